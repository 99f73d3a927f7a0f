"""The official Luma SDK (`lumaai`, unmodified) against a running lumagate.

Run by tests/e2e/dream_machine.rs, which starts lumagate and passes:
  LUMAGATE_BASE_URL  http://HOST:PORT/dream-machine/v1
  LUMAGATE_ORIGIN    http://HOST:PORT (for reading the same task on the reseller surface)
  LUMAGATE_KEY       a key for both tiers
  LUMAGATE_IMAGE_URL an image lumagate may fetch (its server is allowed by configuration)
Plain unittest, so the virtual environment needs nothing but lumaai.
"""

import json
import os
import time
import unittest
import urllib.request
import uuid

import lumaai
from lumaai import LumaAI
from lumaai.types import Generation

BASE_URL = os.environ["LUMAGATE_BASE_URL"]
ORIGIN = os.environ["LUMAGATE_ORIGIN"]
KEY = os.environ["LUMAGATE_KEY"]
IMAGE_URL = os.environ["LUMAGATE_IMAGE_URL"]
FINISH_WITHIN_S = 120


def client(key=KEY):
    # max_retries=0: a retry would hide a status the SDK was not meant to see.
    return LumaAI(auth_token=key, base_url=BASE_URL, max_retries=0, timeout=30)


def wait_done(c, generation_id):
    """The SDK has no polling helper; this is the docs' loop."""
    deadline = time.time() + FINISH_WITHIN_S
    while True:
        g = c.generations.get(generation_id)
        if g.state in ("completed", "failed"):
            return g
        assert g.state in ("queued", "dreaming"), g.state
        if time.time() > deadline:
            raise AssertionError(f"{generation_id} still {g.state} after {FINISH_WITHIN_S}s")
        time.sleep(0.3)


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


class DreamMachineSurface(unittest.TestCase):
    def setUp(self):
        self.c = client()

    def assert_video(self, g):
        self.assertIsInstance(g, Generation)
        self.assertEqual(g.state, "completed", g.failure_reason)
        self.assertTrue(g.assets.video.startswith("http"), g.assets.video)
        status, body = fetch(g.assets.video)
        self.assertEqual(status, 200)
        self.assertEqual(body[4:8], b"ftyp", "assets.video is an MP4")
        self.assertTrue(g.assets.image.startswith("http"))

    def test_ping_credits_and_concepts(self):
        self.assertEqual(self.c.ping.check().message, "pong")
        self.assertGreater(self.c.credits.get().credit_balance, 0)
        concepts = self.c.generations.concepts.list()
        self.assertIn("dolly_zoom", concepts)

    def test_text_to_video_then_extend_and_interpolate(self):
        g = self.c.generations.create(
            model="ray-2", prompt="a tiger walking in snow", aspect_ratio="16:9",
            loop=False, resolution="720p", duration="5s",
            concepts=[{"key": "dolly_zoom"}],
        )
        self.assertIsInstance(g, Generation)
        self.assertIn(g.state, ("queued", "dreaming"))
        self.assertEqual(g.generation_type, "video")
        self.assertIsNone(g.assets)
        self.assertEqual(g.request.prompt, "a tiger walking in snow")
        done = wait_done(self.c, g.id)
        self.assert_video(done)
        self.assertEqual(done.model, "ray-2")

        extended = self.c.generations.create(
            model="ray-2", prompt="the tiger starts running",
            keyframes={"frame0": {"type": "generation", "id": g.id}},
        )
        interpolated = self.c.generations.create(
            model="ray-2", prompt="the tiger reaches a cabin",
            keyframes={"frame0": {"type": "generation", "id": g.id},
                       "frame1": {"type": "image", "url": IMAGE_URL}},
        )
        self.assertEqual(extended.request.keyframes.frame0.id, g.id)
        self.assertEqual(interpolated.request.keyframes.frame1.url, IMAGE_URL)
        self.assert_video(wait_done(self.c, extended.id))
        self.assert_video(wait_done(self.c, interpolated.id))
        # The reseller surface sees the same tasks: one pool.
        status, body = fetch(f"{ORIGIN}/luma/generations/{extended.id}", {"Authorization": f"Bearer {KEY}"})
        self.assertEqual(status, 200)
        task = json.loads(body)
        self.assertEqual(task["parent_id"], g.id)
        self.assertEqual(task["state"], "completed")

    def test_image_keyframes_and_the_legacy_create_path(self):
        g = self.c.generations.create(
            model="ray-flash-2", prompt="the picture comes alive", aspect_ratio="9:16",
            keyframes={"frame0": {"type": "image", "url": IMAGE_URL}},
        )
        # SDKs up to 1.10 posted to /generations; the client's own post() reaches it.
        legacy = self.c.post(
            "/generations", cast_to=Generation,
            body={"model": "ray-2", "prompt": "an end frame only",
                  "keyframes": {"frame1": {"type": "image", "url": IMAGE_URL}}},
        )
        self.assertIsInstance(legacy, Generation)
        self.assertEqual(legacy.state, "queued")
        self.assert_video(wait_done(self.c, g.id))
        self.assert_video(wait_done(self.c, legacy.id))

    def test_list_pages_and_delete(self):
        ids = [self.c.generations.create(model="ray-2", prompt=f"list item {i}").id for i in range(3)]
        page = self.c.generations.list(limit=2, offset=0)
        self.assertEqual(page.count, 2)
        self.assertEqual(page.limit, 2)
        self.assertTrue(page.has_more)
        everything = self.c.generations.list(limit=1000).generations
        listed = [g.id for g in everything]
        for i in ids:
            self.assertIn(i, listed)
        self.assertEqual([g.id for g in page.generations], listed[:2], "newest first, offset pagination")
        second = self.c.generations.list(limit=2, offset=2)
        self.assertEqual([g.id for g in second.generations], listed[2:4])

        self.assertIsNone(self.c.generations.delete(ids[0]))
        with self.assertRaises(lumaai.NotFoundError):
            self.c.generations.get(ids[0])
        self.assertNotIn(ids[0], [g.id for g in self.c.generations.list(limit=1000).generations])
        with self.assertRaises(lumaai.NotFoundError):
            self.c.generations.delete(ids[0])

    def test_errors_map_to_the_sdk_exceptions(self):
        with self.assertRaises(lumaai.AuthenticationError) as e:
            client("lg-not-a-key").generations.list()
        self.assertEqual(e.exception.status_code, 401)
        self.assertIn("detail", e.exception.body)
        with self.assertRaises(lumaai.NotFoundError) as e:
            self.c.generations.get(str(uuid.uuid4()))
        self.assertEqual(e.exception.status_code, 404)
        with self.assertRaises(lumaai.BadRequestError) as e:
            self.c.generations.create(model="ray-2", prompt="")
        self.assertEqual(e.exception.body["detail"], "Prompt is required")
        with self.assertRaises(lumaai.BadRequestError) as e:
            self.c.generations.create(model="ray-2", prompt="loops", loop=True,
                                      keyframes={"frame1": {"type": "image", "url": IMAGE_URL}})
        self.assertEqual(e.exception.body["detail"], "Loop is not supported for end frame")
        with self.assertRaises(lumaai.NotFoundError):
            self.c.generations.create(model="ray-2", prompt="extend nothing",
                                      keyframes={"frame0": {"type": "generation", "id": str(uuid.uuid4())}})

    def test_an_unfinished_generation_cannot_be_extended_and_that_is_not_retried(self):
        g = self.c.generations.create(model="ray-2", prompt="still rendering")
        # A 409 would make the SDK retry; lumagate answers 400, once.
        with self.assertRaises(lumaai.BadRequestError):
            client().with_options(max_retries=2).generations.create(
                model="ray-2", prompt="too early", keyframes={"frame0": {"type": "generation", "id": g.id}})

    def test_idempotency_key_header(self):
        key = str(uuid.uuid4())
        a = self.c.generations.create(model="ray-2", prompt="exactly once", extra_headers={"Idempotency-Key": key})
        b = self.c.generations.create(model="ray-2", prompt="exactly once", extra_headers={"Idempotency-Key": key})
        self.assertEqual(a.id, b.id)
        with self.assertRaises(lumaai.UnprocessableEntityError):
            self.c.generations.create(model="ray-2", prompt="something else", extra_headers={"Idempotency-Key": key})


if __name__ == "__main__":
    unittest.main(verbosity=2)
