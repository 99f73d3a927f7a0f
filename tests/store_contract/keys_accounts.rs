use std::sync::Arc;

use lumagate::accounts::Account;
use lumagate::keys::issue;
use lumagate::store::Store;
use lumagate::tasks::model::{Model, Tier};

crate::contract!(keys_are_found_by_hash_until_revoked, accounts_keep_their_health_across_upserts);

async fn keys_are_found_by_hash_until_revoked(store: Arc<dyn Store>) {
    assert_eq!(store.count_keys().await.unwrap(), 0);
    let a = issue("alpha", vec![Tier::Relax], vec![Model::RayV2, Model::RayV3]);
    let b = issue("beta", Tier::ALL.to_vec(), Model::ALL.to_vec());
    store.insert_key(&a.key, &a.hash).await.unwrap();
    store.insert_key(&b.key, &b.hash).await.unwrap();
    assert!(store.insert_key(&a.key, &a.hash).await.is_err(), "a key id is unique");

    let found = store.active_key_by_hash(&a.hash).await.unwrap().expect("key a by hash");
    assert_eq!((found.id.as_str(), found.name.as_str()), (a.key.id.as_str(), "alpha"));
    assert_eq!(found.tiers, vec![Tier::Relax]);
    assert_eq!(found.models, vec![Model::RayV2, Model::RayV3]);
    assert!(store.active_key_by_hash("no-such-hash").await.unwrap().is_none());
    assert_eq!(store.list_keys().await.unwrap().len(), 2);

    assert!(store.revoke_key(&a.key.id).await.unwrap());
    assert!(!store.revoke_key(&a.key.id).await.unwrap(), "revoking twice changes nothing");
    assert!(!store.revoke_key("nobody").await.unwrap());
    assert!(store.active_key_by_hash(&a.hash).await.unwrap().is_none(), "a revoked key no longer authenticates");
    let listed = store.list_keys().await.unwrap();
    assert!(listed.iter().any(|k| k.id == a.key.id && k.revoked_at.is_some()), "revoked keys stay listed");
    assert_eq!(store.count_keys().await.unwrap(), 2);
}

async fn accounts_keep_their_health_across_upserts(store: Arc<dyn Store>) {
    let mut a = Account::new("a", "sandbox", 2);
    a.tiers = vec![Tier::Pro];
    a.credentials = serde_json::json!({"token": "t"});
    store.upsert_account(&a).await.unwrap();
    store.upsert_account(&Account::new("b", "sandbox", 1)).await.unwrap();

    assert!(store.set_enabled("a", false, Some("billing")).await.unwrap());
    assert!(!store.set_enabled("nobody", false, None).await.unwrap());
    store.set_cooldown("a", 500).await.unwrap();
    store.set_cooldown("a", 100).await.unwrap();

    a.concurrency = 5;
    store.upsert_account(&a).await.unwrap();
    let accounts = store.accounts().await.unwrap();
    assert_eq!(accounts.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let got = &accounts[0];
    assert_eq!(got.concurrency, 5, "configuration is replaced");
    assert_eq!(got.tiers, vec![Tier::Pro]);
    assert_eq!(got.credentials, serde_json::json!({"token": "t"}));
    assert!(!got.enabled, "health survives an upsert");
    assert_eq!(got.disabled_reason.as_deref(), Some("billing"));
    assert_eq!(got.cooldown_until, Some(500), "a cooldown is never shortened");

    assert!(store.set_enabled("a", true, Some("ignored")).await.unwrap());
    let got = store.accounts().await.unwrap().remove(0);
    assert!(got.enabled && got.disabled_reason.is_none());
}
