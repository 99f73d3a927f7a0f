//! The admin API (issue 9): behind the admin token; accounts with health and in-flight,
//! queue depth, keys (list, create, revoke), recent failures with reasons.

use serde_json::{json, Value};

use crate::harness::{assert_error, id_of, is_terminal, prompt, App, Go, COMPLETION};

const TOKEN: &str = "admin-e2e-token-0123456789";

fn admin_get(app: &App, path: &str) -> reqwest::RequestBuilder {
    app.get_as(TOKEN, path)
}

#[tokio::test]
async fn only_the_admin_token_opens_the_admin_api() {
    let app = App::start(&[("LUMAGATE_ADMIN_TOKEN", TOKEN)]).await;
    let none = app.anon(reqwest::Method::GET, "/admin/accounts").go().await;
    assert_error(&none, 401, &["authorization"]);
    // An API key is not an admin credential.
    let key = app.get("/admin/accounts").go().await;
    assert_error(&key, 401, &["admin token"]);
    let near = app.get_as(&TOKEN[..TOKEN.len() - 1], "/admin/keys").go().await;
    assert_error(&near, 401, &["admin token"]);
    let ok = admin_get(&app, "/admin/accounts").go().await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[tokio::test]
async fn accounts_show_health_in_flight_and_can_be_disabled() {
    let app = App::start(&[
        ("LUMAGATE_ADMIN_TOKEN", TOKEN),
        ("LUMAGATE_SANDBOX_DELAY_MS", "600000"),
        ("LUMAGATE_SANDBOX_SLOTS", "2"),
    ])
    .await;
    // Two slots, one kept for pro: one relax task runs, the next two wait.
    for i in 0..3 {
        app.create(prompt(&format!("long {i}"))).await;
    }
    let pool = crate::harness::eventually("one task in flight", COMPLETION, || async {
        let pool = admin_get(&app, "/admin/accounts").go().await.json();
        (pool["accounts"][0]["in_flight"] == 1).then_some(pool)
    })
    .await;
    let account = &pool["accounts"][0];
    assert_eq!(account["id"], "sandbox");
    assert_eq!(account["health"], "enabled");
    assert_eq!(account["concurrency"], 2);
    assert_eq!(account["cooldown_until"], Value::Null);
    let queue = admin_get(&app, "/admin/queue").go().await.json();
    assert_eq!(queue["depth"], json!({"relax": 2, "pro": 0}), "{queue}");
    assert_eq!(queue["in_flight"], 1);

    let r = app.post_as(TOKEN, "/admin/accounts/sandbox/disable", &json!({"reason": "maintenance"})).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let account = &admin_get(&app, "/admin/accounts").go().await.json()["accounts"][0];
    assert_eq!(account["health"], "disabled");
    assert_eq!(account["disabled_reason"], "maintenance");
    let r = app.post_as(TOKEN, "/admin/accounts/sandbox/enable", &json!({})).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(admin_get(&app, "/admin/accounts").go().await.json()["accounts"][0]["health"], "enabled");
    let r = app.post_as(TOKEN, "/admin/accounts/nobody/enable", &json!({})).go().await;
    assert_error(&r, 404, &["nobody"]);
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let app = App::start(&[("LUMAGATE_ADMIN_TOKEN", TOKEN), ("LUMAGATE_SANDBOX_DELAY_MS", "600000")]).await;
    let r = app.post_as(TOKEN, "/admin/keys", &json!({"name": "web", "tiers": ["relax"]})).go().await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let secret = created["secret"].as_str().expect("the secret, once").to_string();
    assert!(secret.starts_with("lg-"), "{created}");
    assert_eq!(created["tiers"], json!(["relax"]));
    assert_eq!(created["active"], true);
    let id = created["id"].as_str().unwrap().to_string();

    // The new key works at once, within its rights.
    app.create_at("/luma/generations", &secret, prompt("from the new key")).await;
    let pro = app.post_as(&secret, "/pro/luma/generations", &prompt("pro")).go().await;
    assert_error(&pro, 403, &["pro"]);

    let listed = admin_get(&app, "/admin/keys").go().await.json();
    let row = listed["keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).expect("listed").clone();
    assert_eq!(row["name"], "web");
    assert!(row.get("secret").is_none(), "a listing never shows secrets: {row}");

    let r = app.http.delete(app.url(&format!("/admin/keys/{id}"))).bearer_auth(TOKEN).go().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let refused = app.get_as(&secret, "/luma/generations").go().await;
    assert_error(&refused, 401, &[]);
    let again = app.http.delete(app.url(&format!("/admin/keys/{id}"))).bearer_auth(TOKEN).go().await;
    assert_error(&again, 404, &[&id]);
    let listed = admin_get(&app, "/admin/keys").go().await.json();
    let row = listed["keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert_eq!(row["active"], false);

    let r = app.post_as(TOKEN, "/admin/keys", &json!({"name": "  "})).go().await;
    assert_error(&r, 400, &["name"]);
    let r = app.post_as(TOKEN, "/admin/keys", &json!({"name": "x", "tiers": ["gold"]})).go().await;
    assert_error(&r, 400, &["gold"]);
    let r = app.post_as(TOKEN, "/admin/keys", &json!({"name": "x", "models": ["ray-v9"]})).go().await;
    assert_error(&r, 400, &["ray-v9"]);
    let r = app.post_as(TOKEN, "/admin/keys", &json!("not an object")).go().await;
    assert_error(&r, 400, &["name"]);
}

#[tokio::test]
async fn recent_failures_carry_their_reasons() {
    let app = App::start(&[
        ("LUMAGATE_ADMIN_TOKEN", TOKEN),
        ("LUMAGATE_SANDBOX_DELAY_MS", "200"),
        ("LUMAGATE_SANDBOX_FAIL_RATE", "1"),
    ])
    .await;
    let id = id_of(&app.create(prompt("doomed")).await);
    app.wait_for(&id, "finished", COMPLETION, is_terminal).await;
    let failures = admin_get(&app, "/admin/failures?limit=5").go().await.json();
    let first = &failures["failures"][0];
    assert_eq!(first["task_id"], id.as_str(), "{failures}");
    assert_eq!(first["key_id"], app.key.id.as_str());
    assert_eq!(first["account"], "sandbox");
    assert!(first["failure_reason"].as_str().unwrap().contains("moderation"), "{first}");
    let r = admin_get(&app, "/admin/failures?limit=0").go().await;
    assert_error(&r, 400, &["limit"]);
}
