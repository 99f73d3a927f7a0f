//! Tests of URL intake against local test servers: success, SSRF refusals (literal
//! IPs, DNS answers, redirects), timeouts, statuses and size caps.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::tests_decode::png;
use super::*;

const TEST_IP: &str = "127.0.0.2";

fn test_ip() -> IpAddr {
    TEST_IP.parse().unwrap()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// Serves the test routes on `ip`, port chosen by the OS.
async fn serve(ip: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind test server");
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    let image = png(20, 10);
    let app = Router::new()
        .route(
            "/img.png",
            get(move || async move { ([(header::CONTENT_TYPE, "image/png")], image) }),
        )
        .route(
            "/text",
            get(|| async { "<!doctype html><html>hello</html>" }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "nope") }),
        )
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/to-loopback",
            get(move || async move { redirect(format!("http://127.0.0.1:{port}/img.png")) }),
        )
        .route(
            "/to-metadata",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data/".into()) }),
        )
        .route(
            "/to-localhost",
            get(move || async move { redirect(format!("http://localhost:{port}/img.png")) }),
        )
        .route(
            "/to-ftp",
            get(|| async { redirect("ftp://example.com/a.png".into()) }),
        )
        .route("/relative", get(|| async { redirect("/img.png".into()) }))
        .route(
            "/hop/{n}",
            get(
                |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    if n == 0 {
                        redirect("/img.png".into())
                    } else {
                        redirect(format!("/hop/{}", n - 1))
                    }
                },
            ),
        )
        .route("/loop", get(|| async { redirect("/loop".into()) }))
        .route("/no-location", get(|| async { StatusCode::FOUND }))
        .route("/big", get(|| async { vec![0u8; 4096] }))
        .route(
            "/big-chunked",
            get(|| async {
                let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![0x89u8; 1024]));
                Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/stall-body",
            get(|| async {
                let first = futures_util::stream::iter([Ok::<_, std::io::Error>(
                    png(20, 10)[..16].to_vec(),
                )]);
                let never = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
                Response::builder()
                    .header(header::CONTENT_LENGTH, "1000")
                    .body(Body::from_stream(futures_util::StreamExt::chain(
                        first, never,
                    )))
                    .unwrap()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    addr
}

/// Accepts connections and never answers.
async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((TEST_IP, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    addr
}

fn limits() -> IntakeLimits {
    IntakeLimits {
        fetch_timeout: Duration::from_secs(5),
        ..IntakeLimits::default()
    }
}

async fn fetch_with(
    url: &str,
    limits: &IntakeLimits,
    allow: Vec<IpAddr>,
) -> Result<Keyframe, IntakeError> {
    intake("image_url", url, limits, &Fetcher::new(limits, allow)).await
}

async fn fetch(url: &str) -> Result<Keyframe, IntakeError> {
    fetch_with(url, &limits(), vec![test_ip()]).await
}

async fn refused(url: &str) -> IntakeError {
    match fetch(url).await {
        Ok(k) => panic!("{url} accepted: {k:?}"),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

#[tokio::test]
async fn fetches_from_an_allowed_address() {
    let addr = serve(TEST_IP).await;
    let k = fetch(&format!("http://{addr}/img.png")).await.unwrap();
    assert_eq!((k.format, k.width, k.height), (ImageKind::Png, 20, 10));
    assert_eq!(&k.bytes[..], &png(20, 10)[..]);
    // Relative redirects and chains within the limit are followed.
    let k = fetch(&format!("http://{addr}/relative")).await.unwrap();
    assert_eq!(k.width, 20);
    let k = fetch(&format!("http://{addr}/hop/4")).await.unwrap();
    assert_eq!(k.width, 20);
}

#[tokio::test]
async fn loopback_is_refused_even_next_to_an_allowed_address() {
    let addr = serve("127.0.0.1").await;
    let e = refused(&format!("http://127.0.0.1:{}/img.png", addr.port())).await;
    assert_eq!(
        e.to_string(),
        "image_url: address 127.0.0.1 is not allowed (loopback)"
    );
    assert!(!e.is_too_large());
}

#[tokio::test]
async fn host_names_are_checked_through_dns() {
    let addr = serve("127.0.0.1").await;
    let url = format!("http://localhost:{}/img.png", addr.port());
    let e = refused(&url).await;
    assert!(matches!(e, IntakeError::ForbiddenHost { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("image_url: host localhost resolves only to addresses that are not allowed (127.0.0.1 is loopback"), "{msg}");
    // The resolver path itself works: allowed answers are used.
    let k = fetch_with(
        &url,
        &limits(),
        vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(k.width, 20);
}

#[tokio::test]
async fn resolver_drops_disallowed_answers() {
    let err = fetch::resolve_for_test("localhost", &[]).await.unwrap_err();
    assert!(err.contains("127.0.0.1 is loopback"), "{err}");
    let ok = fetch::resolve_for_test("localhost", &["127.0.0.1".parse().unwrap()])
        .await
        .unwrap();
    assert!(!ok.is_empty());
    assert!(
        ok.iter()
            .all(|a| a.ip() == "127.0.0.1".parse::<IpAddr>().unwrap()),
        "{ok:?}"
    );
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let addr = serve(TEST_IP).await;
    let e = refused(&format!("http://{addr}/to-loopback")).await;
    assert_eq!(
        e.to_string(),
        "image_url: address 127.0.0.1 is not allowed (loopback)"
    );
    let e = refused(&format!("http://{addr}/to-metadata")).await;
    assert_eq!(
        e.to_string(),
        "image_url: address 169.254.169.254 is not allowed (cloud metadata)"
    );
    let e = refused(&format!("http://{addr}/to-localhost")).await;
    assert!(matches!(e, IntakeError::ForbiddenHost { .. }), "{e:?}");
    let e = refused(&format!("http://{addr}/to-ftp")).await;
    assert_eq!(
        e.to_string(),
        "image_url: URL scheme \"ftp\" is not allowed, only http and https"
    );
    let e = refused(&format!("http://{addr}/loop")).await;
    assert_eq!(e.to_string(), "image_url: too many redirects (more than 5)");
    let e = refused(&format!("http://{addr}/hop/5")).await;
    assert!(
        matches!(e, IntakeError::TooManyRedirects { max: 5, .. }),
        "{e:?}"
    );
    let e = refused(&format!("http://{addr}/no-location")).await;
    assert_eq!(
        e.to_string(),
        "image_url: bad redirect (upstream answered 302 without a Location header)"
    );
}

#[tokio::test]
async fn ip_literal_forms_are_refused() {
    let cases = [
        ("http://[::1]/", "::1", "loopback"),
        ("http://0x7f000001/", "127.0.0.1", "loopback"),
        ("http://2130706433/", "127.0.0.1", "loopback"),
        ("http://017700000001/", "127.0.0.1", "loopback"),
        ("http://127.1:8080/", "127.0.0.1", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "loopback"),
        (
            "https://[::ffff:a9fe:a9fe]/",
            "::ffff:169.254.169.254",
            "cloud metadata",
        ),
        ("http://0/", "0.0.0.0", "unspecified"),
        ("http://10.1.2.3/", "10.1.2.3", "private"),
        ("http://192.168.0.1/", "192.168.0.1", "private"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        (
            "http://[fd00:ec2::254]/latest",
            "fd00:ec2::254",
            "cloud metadata",
        ),
        (
            "http://100.100.100.200/",
            "100.100.100.200",
            "cloud metadata",
        ),
        (
            "http://100.64.1.1/",
            "100.64.1.1",
            "shared address space (CGNAT)",
        ),
        ("http://255.255.255.255/", "255.255.255.255", "broadcast"),
        ("http://224.0.0.1/", "224.0.0.1", "multicast"),
        ("HTTP://user:pw@127.0.0.1./x", "127.0.0.1", "loopback"),
    ];
    for (url, addr, why) in cases {
        let e = refused(url).await;
        assert_eq!(
            e.to_string(),
            format!("image_url: address {addr} is not allowed ({why})"),
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let addr = silent_server().await;
    let quick = IntakeLimits {
        fetch_timeout: Duration::from_millis(300),
        ..IntakeLimits::default()
    };
    let started = Instant::now();
    let e = fetch_with(&format!("http://{addr}/img.png"), &quick, vec![test_ip()])
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "image_url: fetch timed out after 0.3 s");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Headers arrive, the body stalls: the same timeout covers the body.
    let server = serve(TEST_IP).await;
    let started = Instant::now();
    let e = fetch_with(
        &format!("http://{server}/stall-body"),
        &quick,
        vec![test_ip()],
    )
    .await
    .unwrap_err();
    assert!(matches!(e, IntakeError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn upstream_errors_name_the_status() {
    let addr = serve(TEST_IP).await;
    let e = refused(&format!("http://{addr}/missing")).await;
    assert_eq!(e.to_string(), "image_url: upstream answered 404");
    let e = refused(&format!("http://{addr}/boom")).await;
    assert_eq!(e.to_string(), "image_url: upstream answered 500");
    // Nothing listens on the port any more.
    let gone = std::net::TcpListener::bind((TEST_IP, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let e = refused(&format!("http://{gone}/img.png")).await;
    assert!(matches!(e, IntakeError::Fetch { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "image_url: could not fetch the image (could not connect to {gone}"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_too_large() {
    let addr = serve(TEST_IP).await;
    let small = IntakeLimits {
        max_bytes: 2048,
        ..limits()
    };
    let e = fetch_with(&format!("http://{addr}/big"), &small, vec![test_ip()])
        .await
        .unwrap_err();
    assert!(e.is_too_large());
    assert_eq!(
        e.to_string(),
        "image_url: image is 4096 bytes, the limit is 2048 bytes"
    );
    let e = fetch_with(
        &format!("http://{addr}/big-chunked"),
        &small,
        vec![test_ip()],
    )
    .await
    .unwrap_err();
    assert!(e.is_too_large());
    assert_eq!(
        e.to_string(),
        "image_url: image is larger than the limit of 2048 bytes"
    );
}

#[tokio::test]
async fn fetched_non_images_are_refused() {
    let addr = serve(TEST_IP).await;
    let e = refused(&format!("http://{addr}/text")).await;
    assert_eq!(
        e.to_string(),
        "image_url: not a PNG, JPEG, WebP or GIF image (it looks like an HTML page)"
    );
}
