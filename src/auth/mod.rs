//! Password hashing (argon2id) and the random tokens behind sessions, API tokens and
//! invitations. Tokens are 256 random bits; only their SHA-256 is ever stored. Hashes
//! imported from another system may also be bcrypt (`$2a$`, `$2b$`, `$2y$`): they verify,
//! and are replaced by argon2id at the next successful sign-in (`needs_rehash`).
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::domain::Password;

fn argon2() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

pub fn hash_password(password: &Password) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError)
}

/// A new argon2id hash of a password that just verified against an older hash: it is the
/// account's password as it stands, whatever rules new passwords follow.
pub fn hash_verified_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError)
}

/// The kinds of stored password hash that verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// An argon2 PHC string (argon2id, argon2i or argon2d, any parameters).
    Argon2,
    /// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`, cost 4 to 31).
    Bcrypt,
}

/// What a stored hash is, or `None` when it is neither (it would never match).
pub fn hash_kind(stored: &str) -> Option<HashKind> {
    if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        return stored
            .parse::<bcrypt::HashParts>()
            .ok()
            .map(|_| HashKind::Bcrypt);
    }
    let parsed = PasswordHash::new(stored).ok()?;
    ["argon2id", "argon2i", "argon2d"]
        .contains(&parsed.algorithm.as_str())
        .then_some(HashKind::Argon2)
}

/// Constant-time verification against a stored hash (argon2 with the parameters it names,
/// or bcrypt); a malformed hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match hash_kind(stored) {
        Some(HashKind::Argon2) => PasswordHash::new(stored).is_ok_and(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        }),
        Some(HashKind::Bcrypt) => bcrypt::verify(password, stored).unwrap_or(false),
        None => false,
    }
}

/// Whether a hash that just verified should be replaced by a new argon2id one: bcrypt
/// hashes (imported) are.
pub fn needs_rehash(stored: &str) -> bool {
    hash_kind(stored) != Some(HashKind::Argon2)
}

/// A hash to verify against when the account does not exist, so that an unknown email
/// costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(b"no such account, no such password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// 256 random bits, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored in place of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub const API_TOKEN_PREFIX: &str = "xa_";

pub fn new_api_token() -> String {
    format!("{API_TOKEN_PREFIX}{}", random_token())
}

/// The form in which a secret may be shown again: its prefix and last four characters.
pub fn hint(secret: &str) -> String {
    let prefix = if let Some(p) = secret.split_inclusive(['-', '_']).next() {
        if p.len() <= 8 && p.len() < secret.len() {
            p
        } else {
            ""
        }
    } else {
        ""
    };
    let n = secret.chars().count();
    let tail: String = secret.chars().skip(n.saturating_sub(4)).collect();
    if n < 12 {
        return format!("{prefix}…");
    }
    format!("{prefix}…{tail}")
}

/// Constant-time equality for tokens compared in memory (CSRF).
pub fn tokens_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let p = Password::parse("correct horse battery").unwrap();
        let h = hash_password(&p).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batter", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn imported_argon2_and_bcrypt_hashes_verify_and_bcrypt_ones_are_replaced() {
        // argon2id with other parameters than ours (m=64 MiB, t=3, p=4), as another
        // system wrote it.
        let salt = SaltString::generate(&mut OsRng);
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64 * 1024, 3, 4, None).unwrap(),
        )
        .hash_password(b"imported secret", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password("imported secret", &other));
        assert!(!verify_password("imported secreT", &other));
        assert!(!needs_rehash(&other));
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let b = bcrypt::hash("legacy pass", 4)
                .unwrap()
                .replacen("$2b$", prefix, 1);
            assert_eq!(hash_kind(&b), Some(HashKind::Bcrypt), "{b}");
            assert!(verify_password("legacy pass", &b), "{b}");
            assert!(!verify_password("legacy pas", &b), "{b}");
            assert!(needs_rehash(&b));
        }
        for bad in [
            "$2x$04$abcdefghijklmnopqrstuu",
            "$2b$04$short",
            "$pbkdf2-sha256$29000$abc$def",
            "plain text",
            "",
        ] {
            assert_eq!(hash_kind(bad), None, "{bad}");
            assert!(!verify_password("", bad));
        }
    }

    #[test]
    fn tokens_are_long_random_and_hinted_safely() {
        let a = new_api_token();
        assert!(a.starts_with("xa_") && a.len() == 46);
        assert_ne!(a, new_api_token());
        assert_eq!(token_hash(&a).len(), 64);
        let h = hint("sk-abcdefghijklmnop1234");
        assert_eq!(h, "sk-…1234");
        assert_eq!(hint(&a), format!("xa_…{}", &a[a.len() - 4..]));
        assert!(!hint("short").contains("short"));
    }
}
