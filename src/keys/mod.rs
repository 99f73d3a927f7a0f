//! API keys: what a caller may do, and how a secret key maps to its stored hash.
//!
//! A key is shown once at creation; only its SHA-256 is stored, so a leaked database
//! does not leak usable keys.

mod cache;

pub use cache::{KeyCache, KEY_TTL};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::tasks::model::{Model, Tier};

/// Prefix of every key, so they are recognisable in logs and secret scanners.
pub const KEY_PREFIX: &str = "lg-";

/// A stored key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub tiers: Vec<Tier>,
    pub models: Vec<Model>,
    /// Tier of tasks created on the Dream Machine surface, which has no tier in its
    /// paths; `None` means the key's best tier.
    pub dm_tier: Option<Tier>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    pub fn may_use_tier(&self, tier: Tier) -> bool {
        self.tiers.contains(&tier)
    }

    pub fn may_use_model(&self, model: Model) -> bool {
        self.models.contains(&model)
    }

    /// The tier the Dream Machine surface creates with: the key's setting, else its best tier.
    pub fn dream_machine_tier(&self) -> Tier {
        self.dm_tier.unwrap_or(if self.may_use_tier(Tier::Pro) { Tier::Pro } else { Tier::Relax })
    }
}

/// A freshly generated key: the secret (shown once) and the row to store.
pub struct IssuedKey {
    pub secret: String,
    pub hash: String,
    pub key: ApiKey,
}

/// Makes a new key with 160 bits of randomness.
pub fn issue(name: &str, tiers: Vec<Tier>, models: Vec<Model>) -> IssuedKey {
    let mut raw = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(raw));
    let hash = hash_secret(&secret);
    let key = ApiKey {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        name: name.to_string(),
        tiers,
        models,
        dm_tier: None,
        created_at: crate::tasks::model::now_micros(),
        revoked_at: None,
    };
    IssuedKey { secret, hash, key }
}

/// The stored form of a secret key: [`secret_digest`] in hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(secret_digest(secret))
}

/// The SHA-256 of a secret key.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The admin API's credential. Only its SHA-256 is kept in memory, and a presented token
/// is compared by hash in constant time, so neither timing nor length says how close a
/// guess came.
pub struct AdminToken {
    hash: [u8; 32],
}

impl AdminToken {
    pub fn new(secret: &str) -> AdminToken {
        AdminToken { hash: Sha256::digest(secret.as_bytes()).into() }
    }

    /// A fresh random token, for the first start.
    pub fn generate() -> String {
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        format!("lga-{}", hex::encode(raw))
    }

    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.hash).into()
    }
}

/// Parses a comma-separated tier list such as `relax,pro`.
pub fn parse_tiers(list: &str) -> Result<Vec<Tier>, String> {
    parse_list(list, Tier::parse, "tier", "relax, pro")
}

/// Parses a comma-separated model list such as `ray-v1,ray-v2`.
pub fn parse_models(list: &str) -> Result<Vec<Model>, String> {
    parse_list(list, Model::parse, "model", Model::ALLOWED)
}

fn parse_list<T: PartialEq>(
    list: &str,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
    allowed: &str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = parse(item).ok_or_else(|| format!("unknown {what} `{item}`; allowed: {allowed}"))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(format!("at least one {what} is required; allowed: {allowed}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_are_unique_and_hash_to_their_stored_form() {
        let a = issue("a", vec![Tier::Relax], Model::ALL.to_vec());
        let b = issue("b", vec![Tier::Relax], Model::ALL.to_vec());
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(KEY_PREFIX));
        assert_eq!(hash_secret(&a.secret), a.hash);
    }

    #[test]
    fn the_admin_token_matches_only_itself() {
        let secret = AdminToken::generate();
        let token = AdminToken::new(&secret);
        assert!(token.matches(&secret));
        assert!(!token.matches(&secret[..secret.len() - 1]));
        assert!(!token.matches(""));
        assert!(!token.matches(&format!("{secret}x")));
    }

    #[test]
    fn tier_lists_parse_and_refuse_unknown_names() {
        assert_eq!(parse_tiers("relax, pro").unwrap(), vec![Tier::Relax, Tier::Pro]);
        assert!(parse_tiers("gold").unwrap_err().contains("gold"));
        assert!(parse_tiers("").is_err());
    }
}
