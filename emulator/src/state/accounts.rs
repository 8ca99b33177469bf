//! Who may sign in: accounts, user ids, devKeys, MFA challenges and trusted devices.

use std::collections::{HashMap, HashSet};

use super::model::random_token;
use crate::config::Account;
use crate::errors::ApiError;

#[derive(Default)]
pub(crate) struct Accounts {
    accounts: Vec<Account>,
    /// userName → userId.
    user_ids: HashMap<String, String>,
    /// devKey → inactive.
    dev_keys: HashMap<String, bool>,
    trusted_devices: HashSet<(String, String)>,
    challenges: HashSet<String>,
}

impl Accounts {
    /// Adds or replaces the account for (userName, orgId); returns the userId.
    pub fn add(&mut self, a: Account) -> String {
        self.dev_keys.insert(a.dev_key.clone(), a.dev_key_inactive);
        let uid =
            self.user_ids.entry(a.user_name.clone()).or_insert_with(|| format!("006{}", random_token(15))).clone();
        self.accounts.retain(|x| !(x.user_name == a.user_name && x.org_id == a.org_id));
        self.accounts.push(a);
        uid
    }

    pub fn check_dev_key(&self, dev_key: &str) -> Result<(), ApiError> {
        match self.dev_keys.get(dev_key) {
            None => Err(ApiError::bad_dev_key()),
            Some(true) => Err(ApiError::dev_key_inactive()),
            Some(false) => Ok(()),
        }
    }

    /// User name and password (BDC_1101), then the lock (BDC_1110).
    pub fn check_password(&self, user: &str, password: &str) -> Result<(), ApiError> {
        let mut mine = self.accounts.iter().filter(|a| a.user_name == user && a.password == password).peekable();
        if mine.peek().is_none() {
            return Err(ApiError::bad_credentials());
        }
        if mine.any(|a| a.locked) {
            return Err(ApiError::login_locked());
        }
        Ok(())
    }

    pub fn orgs_of(&self, user: &str) -> Vec<(String, String)> {
        self.accounts
            .iter()
            .filter(|a| a.user_name == user)
            .map(|a| (a.org_id.clone(), a.org_name.clone().unwrap_or_else(|| a.org_id.clone())))
            .collect()
    }

    pub fn has_org(&self, user: &str, org_id: &str) -> bool {
        self.accounts.iter().any(|a| a.user_name == user && a.org_id == org_id)
    }

    pub fn user_id(&self, user: &str) -> String {
        self.user_ids.get(user).cloned().unwrap_or_default()
    }

    /// Whether the user with this id belongs to the org.
    pub fn user_by_id(&self, user_id: &str, org_id: &str) -> bool {
        self.user_ids.iter().any(|(name, id)| id == user_id && self.has_org(name, org_id))
    }

    /// The user name behind a userId.
    pub fn user_name(&self, user_id: &str) -> Option<&str> {
        self.user_ids.iter().find(|(_, id)| *id == user_id).map(|(name, _)| name.as_str())
    }

    pub fn password(&self, user: &str, org_id: &str) -> Option<&str> {
        self.accounts.iter().find(|a| a.user_name == user && a.org_id == org_id).map(|a| a.password.as_str())
    }

    /// Whether `v` is, or (for secrets of 8+ characters) contains, a password, devKey or user name.
    pub fn holds_secret(&self, v: &str) -> bool {
        self.accounts.iter().any(|a| [&a.password, &a.dev_key, &a.user_name].iter().any(|s| holds(v, s)))
    }

    pub fn is_trusted_device(&self, id: &str, device: &str) -> bool {
        self.trusted_devices.contains(&(id.to_string(), device.to_string()))
    }

    pub fn register_device(&mut self, id: &str, device: &str) {
        self.trusted_devices.insert((id.to_string(), device.to_string()));
    }

    pub fn new_challenge(&mut self) -> String {
        let id = random_token(24);
        self.challenges.insert(id.clone());
        id
    }

    pub fn has_challenge(&self, id: &str) -> bool {
        self.challenges.contains(id)
    }

    /// A challenge is answered once.
    pub fn end_challenge(&mut self, id: &str) {
        self.challenges.remove(id);
    }

    pub fn clear_challenges(&mut self) {
        self.challenges.clear();
    }
}

/// Whether `v` equals `secret` or, for a secret of 8+ characters, contains it.
pub(crate) fn holds(v: &str, secret: &str) -> bool {
    !secret.is_empty() && (v == secret || (secret.len() >= 8 && v.contains(secret)))
}
