//! The renderer's promises, checked on the decoded output with ffprobe and ffmpeg.

mod support;

use self::support::*;
use super::picture::cover;
use super::*;

const ASPECTS: [(u32, u32); 7] = [(1, 1), (16, 9), (9, 16), (4, 3), (3, 4), (21, 9), (9, 21)];

#[test]
fn frame_sizes_follow_the_aspect_ratio_with_an_even_long_side() {
    assert_eq!(frame_size((16, 9), 720), (1280, 720));
    assert_eq!(frame_size((9, 16), 1080), (1080, 1920));
    assert_eq!(frame_size((21, 9), 720), (1680, 720));
    assert_eq!(frame_size((1, 1), 720), (720, 720));
    assert_eq!(frame_size((4, 3), 720), (960, 720));
    assert_eq!(frame_size((9, 21), 1080), (1080, 2520));
    assert_eq!(frame_size((3, 4), 1080), (1080, 1440));
    for aspect in ASPECTS {
        for short in [720, 1080] {
            let (w, h) = frame_size(aspect, short);
            assert_eq!(
                (w % 2, h % 2, w.min(h)),
                (0, 0, short),
                "{aspect:?} at {short}"
            );
        }
    }
}

/// Renders a two-frame clip in every aspect ratio at this short side and checks it.
fn every_aspect_ratio_is_clean_h264_yuv420p_of_its_size(short: u32) {
    for aspect in ASPECTS {
        let (width, height) = frame_size(aspect, short);
        let spec = RenderSpec {
            width,
            height,
            ..spec("a quick size check", 2)
        };
        let probe = probe(&rendered(&spec));
        assert_eq!(
            (probe.codec.as_str(), probe.pix_fmt.as_str()),
            ("h264", "yuv420p")
        );
        assert_eq!(
            (probe.width, probe.height, probe.frames),
            (width, height, 2),
            "{aspect:?} {short}"
        );
        assert_eq!(
            probe.complaints, "",
            "ffprobe warned about {width}x{height}"
        );
    }
}

#[test]
fn every_aspect_ratio_at_720p_is_clean_h264_yuv420p_of_that_size() {
    every_aspect_ratio_is_clean_h264_yuv420p_of_its_size(720);
}

#[test]
fn every_aspect_ratio_at_1080p_is_clean_h264_yuv420p_of_that_size() {
    every_aspect_ratio_is_clean_h264_yuv420p_of_its_size(1080);
}

#[test]
fn five_and_ten_second_clips_have_120_and_240_frames_at_24_fps() {
    for (seconds, frames) in [(5.0, 120), (10.0, 240)] {
        let video = rendered(&RenderSpec {
            width: 256,
            height: 144,
            ..spec("a long take", frames)
        });
        assert_eq!((video.frames, video.duration_secs), (frames, seconds));
        let probe = probe(&video);
        assert_eq!((probe.frames, probe.frame_rate.as_str()), (frames, "24/1"));
        assert!(
            (probe.duration - seconds).abs() < 1e-6,
            "duration {}",
            probe.duration
        );
        assert_eq!(probe.complaints, "");
    }
}

#[test]
fn the_file_is_streamable_with_moov_before_mdat() {
    let video = rendered(&RenderSpec {
        watermark: true,
        ..spec("streaming", 30)
    });
    let boxes = top_level_boxes(&video.mp4);
    let at = |kind: &str| boxes.iter().find(|(k, _)| k == kind).map(|(_, at)| *at);
    assert_eq!(boxes[0].0, "ftyp");
    assert!(
        at("moov").expect("moov") < at("mdat").expect("mdat"),
        "{boxes:?}"
    );
    // The chunk offsets were moved along with the data: every frame still decodes.
    assert_eq!(probe(&video).complaints, "");
    assert_eq!(decode(&video).len(), 30);
}

#[test]
fn the_same_spec_always_renders_the_same_bytes() {
    let spec = RenderSpec {
        start_image: Some(picture(300, 200, 1)),
        watermark: true,
        ..spec("a lighthouse at dusk", 10)
    };
    let (a, b) = (rendered(&spec), rendered(&spec));
    assert!(a.mp4 == b.mp4 && a.thumbnail_jpeg == b.thumbnail_jpeg);
    let other = rendered(&RenderSpec {
        prompt: "a lighthouse at dawn".into(),
        ..spec
    });
    assert_ne!(a.mp4, other.mp4);
}

#[test]
fn the_prompt_moves_the_scene_and_is_captioned() {
    let frames = decode(&rendered(&spec("a red fox in the snow", 24)));
    assert!(difference(&frames[0], &frames[23]) > 3.0, "the scene moves");
    let other = decode(&rendered(&spec("a blue whale in the deep", 1)));
    assert!(
        difference(&frames[0], &other[0]) > 10.0,
        "another prompt, other colours"
    );
    // The caption: white glyph pixels in the lower part of the frame.
    let white = frames[0]
        .enumerate_pixels()
        .filter(|(_, y, p)| *y > H / 2 && p.0.iter().all(|&c| c > 200));
    assert!(white.count() > 100, "a caption is drawn");
}

#[test]
fn the_first_frame_is_the_start_image_scaled_to_cover_and_centred() {
    let image = picture(500, 500, 2);
    let frames = decode(&rendered(&RenderSpec {
        start_image: Some(image.clone()),
        ..spec("pan", 24)
    }));
    let fitted = cover(&image, W, H);
    assert!(
        difference(&frames[0], &fitted) < SAME_PICTURE,
        "{}",
        difference(&frames[0], &fitted)
    );
    assert!(
        difference(&frames[23], &fitted) > 2.0,
        "then the camera moves"
    );
}

#[test]
fn the_last_frame_is_the_end_image() {
    let end = picture(W, H, 3);
    let frames = decode(&rendered(&RenderSpec {
        end_image: Some(end.clone()),
        ..spec("towards", 24)
    }));
    assert!(
        difference(&frames[23], &end) < SAME_PICTURE,
        "{}",
        difference(&frames[23], &end)
    );
    assert!(difference(&frames[0], &end) > 10.0, "it starts elsewhere");
}

#[test]
fn start_and_end_images_pin_both_ends() {
    let (start, end) = (picture(640, 480, 1), picture(200, 400, 4));
    let spec = RenderSpec {
        start_image: Some(start.clone()),
        end_image: Some(end.clone()),
        ..spec("from one to the other", 20)
    };
    let frames = decode(&rendered(&spec));
    assert!(difference(&frames[0], &cover(&start, W, H)) < SAME_PICTURE);
    assert!(difference(&frames[19], &cover(&end, W, H)) < SAME_PICTURE);
}

#[test]
fn a_looped_video_ends_on_its_first_frame() {
    for start_image in [None, Some(picture(W, H, 5))] {
        let frames = decode(&rendered(&RenderSpec {
            looped: true,
            start_image,
            ..spec("round", 24)
        }));
        let (end, middle) = (
            difference(&frames[23], &frames[0]),
            difference(&frames[12], &frames[0]),
        );
        assert!(
            end < SAME_PICTURE / 2.0 && middle > 1.5,
            "back where it started ({end}), moving in between ({middle})"
        );
    }
}

#[test]
fn an_extension_plays_the_parent_then_continues_from_its_last_frame() {
    let parent = RenderSpec {
        end_image: Some(picture(W, H, 6)),
        ..spec("the beginning", 12)
    };
    let child = RenderSpec {
        parent: Some(Box::new(parent.clone())),
        ..spec("what happens next", 12)
    };
    let grandchild = RenderSpec {
        parent: Some(Box::new(child.clone())),
        ..spec("the end", 6)
    };
    let video = rendered(&grandchild);
    assert_eq!((video.frames, video.duration_secs), (30, 30.0 / 24.0));
    let frames = decode(&video);
    assert_eq!(frames.len(), 30);

    let alone = decode(&rendered(&parent));
    for i in [0, 11] {
        assert!(
            difference(&frames[i], &alone[i]) < 1.0,
            "frame {i} is the parent's footage"
        );
    }
    assert!(
        difference(&frames[12], &frames[11]) < SAME_PICTURE / 2.0,
        "picks up where it left off"
    );
    assert!(
        difference(&frames[24], &frames[23]) < SAME_PICTURE / 2.0,
        "and again"
    );
    assert!(
        difference(&frames[23], &frames[11]) > 5.0,
        "and then moves on"
    );
}

#[test]
fn the_watermark_changes_its_corner_and_nothing_else() {
    let (x, y, w, h) = watermark_rect(W, H);
    assert!(
        x + w <= W && y + h <= H && x > W / 2 && y > H / 2,
        "bottom-right corner"
    );
    let inside = |px: u32, py: u32| (x..x + w).contains(&px) && (y..y + h).contains(&py);

    let parent = spec("a calm sea", 6);
    let base = RenderSpec {
        start_image: Some(picture(W, H, 7)),
        ..spec("the storm", 6)
    };
    let extended = |watermark| RenderSpec {
        watermark,
        parent: Some(Box::new(parent.clone())),
        ..base.clone()
    };
    let (pro, relax) = (
        decode(&rendered(&extended(false))),
        decode(&rendered(&extended(true))),
    );
    // Every frame, the parent's footage included, is marked there and only there.
    for (i, (p, r)) in pro.iter().zip(&relax).enumerate() {
        assert!(
            difference_where(p, r, inside) > 20.0,
            "frame {i} is watermarked"
        );
        assert!(
            difference_where(p, r, |a, b| !inside(a, b)) < 0.5,
            "frame {i} is untouched elsewhere"
        );
    }
}

#[test]
fn the_thumbnail_is_a_small_jpeg_of_the_first_frame_as_shown() {
    let (width, height) = frame_size((9, 16), 720);
    let video = rendered(&RenderSpec {
        width,
        height,
        watermark: true,
        ..spec("portrait", 2)
    });
    let thumb =
        image::load_from_memory_with_format(&video.thumbnail_jpeg, image::ImageFormat::Jpeg)
            .expect("a JPEG")
            .to_rgb8();
    assert_eq!(thumb.dimensions(), (270, 480));
    let first = &decode(&video)[0];
    let expected = image::imageops::resize(first, 270, 480, image::imageops::FilterType::Triangle);
    assert!(difference(&thumb, &expected) < SAME_PICTURE);
    let (x, y, w, h) = watermark_rect(width, height);
    let corner = |px: u32, py: u32| {
        px >= x * 270 / width
            && py >= y * 480 / height
            && px < (x + w) * 270 / width
            && py < (y + h) * 480 / height
    };
    let unmarked = rendered(&RenderSpec {
        width,
        height,
        ..spec("portrait", 2)
    });
    let plain = image::load_from_memory(&unmarked.thumbnail_jpeg)
        .expect("a JPEG")
        .to_rgb8();
    assert!(
        difference_where(&thumb, &plain, corner) > 10.0,
        "the watermark shows"
    );
}

#[test]
fn impossible_specs_are_refused() {
    let odd = RenderSpec {
        width: 321,
        ..spec("odd", 2)
    };
    let empty = spec("no frames", 0);
    let tiny = RenderSpec {
        width: 8,
        height: 8,
        ..spec("tiny", 2)
    };
    let huge = RenderSpec {
        width: 4096,
        height: 2304,
        ..spec("too big", 1)
    };
    let bad_parent = RenderSpec {
        parent: Some(Box::new(spec("", 0))),
        ..spec("child", 2)
    };
    for bad in [odd, empty, tiny, huge, bad_parent] {
        assert!(
            matches!(render(&bad), Err(RenderError::InvalidSpec(_))),
            "{}x{}",
            bad.width,
            bad.height
        );
    }
}
