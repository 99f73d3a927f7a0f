//! The client side of the suite: a fully read answer, sending requests, and the check
//! of the contract's error body (API.md §4).

use serde_json::Value;

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Sends a request and reads the whole answer. Every lumagate answer must carry an
/// `x-request-id`, so that is checked here for every request of the suite.
#[allow(async_fn_in_trait)]
pub trait Go {
    async fn go(self) -> Resp;
}

impl Go for reqwest::RequestBuilder {
    async fn go(self) -> Resp {
        let r = self.send().await.expect("sending the request");
        let status = r.status().as_u16();
        let url = r.url().clone();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("reading the body").to_vec();
        let resp = Resp { status, headers, body };
        let id = resp.header("x-request-id");
        assert!(
            id.as_deref().is_some_and(|v| !v.is_empty()),
            "every response must carry x-request-id; {url} answered {status} without it"
        );
        resp
    }
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("answer {} is not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().expect("header is text").to_string())
    }
}

/// Asserts an error answer of the contract (§4): the status, and a JSON body with
/// `detail` equal to `error.message`, a code and a type; `detail` must contain every
/// needle (case-insensitive). Returns the message.
#[track_caller]
pub fn assert_error(r: &Resp, status: u16, needles: &[&str]) -> String {
    assert_eq!(r.status, status, "expected {status}, got {}: {}", r.status, r.text());
    let body = r.json();
    let detail = body["detail"].as_str().unwrap_or_else(|| panic!("no string `detail` in {body}")).to_string();
    assert!(!detail.is_empty(), "empty detail in {body}");
    assert_eq!(body["error"]["message"].as_str(), Some(detail.as_str()), "error.message must equal detail: {body}");
    assert!(body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "no error.code in {body}");
    assert!(body["error"]["type"].as_str().is_some_and(|c| !c.is_empty()), "no error.type in {body}");
    if status == 400 {
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    let lower = detail.to_lowercase();
    for needle in needles {
        assert!(lower.contains(&needle.to_lowercase()), "the message should mention {needle:?}: {detail:?}");
    }
    detail
}

