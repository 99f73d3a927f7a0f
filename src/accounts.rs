//! Upstream provider accounts: the pool's units of capacity.

use serde::{Deserialize, Serialize};

use crate::tasks::model::{Model, Tier};

/// One upstream account. Capacity is per account (`concurrency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Stable id; also the name operators use.
    pub id: String,
    /// Which provider adapter serves it (`sandbox`, `luma-api`, ...).
    pub provider: String,
    pub concurrency: u32,
    pub tiers: Vec<Tier>,
    pub models: Vec<Model>,
    /// Relative share when several accounts are equally free.
    pub weight: u32,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// While set and in the future, the account takes no new work (after a 429).
    pub cooldown_until: Option<i64>,
    /// Provider-specific secrets and settings, as JSON. Never logged.
    #[serde(default)]
    pub credentials: serde_json::Value,
}

impl Account {
    /// An enabled account serving every tier and model, with weight 1 and no credentials.
    pub fn new(id: &str, provider: &str, concurrency: u32) -> Account {
        Account {
            id: id.to_string(),
            provider: provider.to_string(),
            concurrency,
            tiers: Tier::ALL.to_vec(),
            models: Model::ALL.to_vec(),
            weight: 1,
            enabled: true,
            disabled_reason: None,
            cooldown_until: None,
            credentials: serde_json::Value::Null,
        }
    }

    /// Where the account stands now, for operators.
    pub fn health(&self, now: i64) -> AccountHealth {
        if !self.enabled {
            AccountHealth::Disabled
        } else if self.cooldown_until.is_some_and(|until| until > now) {
            AccountHealth::Cooldown
        } else {
            AccountHealth::Enabled
        }
    }

    /// Whether this account may take a new task of this tier and model now.
    pub fn serves(&self, tier: Tier, model: Model, now: i64) -> bool {
        self.enabled
            && self.tiers.contains(&tier)
            && self.models.contains(&model)
            && self.cooldown_until.is_none_or(|until| until <= now)
    }
}

/// An account's health as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountHealth {
    /// Takes work.
    Enabled,
    /// Rate limited upstream; takes work again after `cooldown_until`.
    Cooldown,
    /// Switched off by an operator or after its credentials were refused.
    Disabled,
}

impl AccountHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountHealth::Enabled => "enabled",
            AccountHealth::Cooldown => "cooldown",
            AccountHealth::Disabled => "disabled",
        }
    }
}
