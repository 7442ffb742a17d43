//! Secrets at rest (ARCHITECTURE §5): a master key wraps one data key per organization;
//! provider keys are sealed under their organization's data key with the row they belong
//! to as associated data, so a ciphertext copied to another row does not open.
//!
//! Master keys come from `XAGENT_MASTER_KEY` (comma-separated, newest first) or from the
//! key file `<data dir>/master.key` (mode 0600, one `id base64` line per key, newest first),
//! created on first start. Rotation puts a new key first and re-wraps the data keys; the
//! older keys stay readable until they are retired.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1";
pub const KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid master key: {0}")]
    BadMasterKey(String),
    #[error("key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key {0} is not configured (data keys were wrapped with it)")]
    UnknownMasterKey(String),
    /// Wrong key, wrong row, or altered bytes: AES-GCM does not say which.
    #[error(
        "a stored secret could not be decrypted (wrong key, or the ciphertext was moved or altered)"
    )]
    Unreadable,
    #[error("master keys come from XAGENT_MASTER_KEY: {0}")]
    FromEnvironment(&'static str),
}

/// 32 secret bytes. Never printed: `Debug` shows only the id.
#[derive(Clone)]
pub struct Key {
    id: String,
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    pub fn generate(id: String) -> Key {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Key { id, bytes }
    }

    /// A master key's id is derived from the key, so the same key always has the same id
    /// and a wrong key is recognised before anything is decrypted.
    fn master(bytes: [u8; 32]) -> Key {
        let digest = Sha256::new()
            .chain_update(b"xagent master key id\0")
            .chain_update(bytes)
            .finalize();
        Key {
            id: format!("mk-{}", hex::encode(&digest[..8])),
            bytes,
        }
    }

    pub fn generate_master() -> Key {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Key::master(bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn parse_master(b64: &str) -> Result<Key, CryptoError> {
        let raw = B64
            .decode(b64.trim())
            .map_err(|_| CryptoError::BadMasterKey("not base64".into()))?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| {
            CryptoError::BadMasterKey("must be 32 bytes (44 characters of base64)".into())
        })?;
        Ok(Key::master(bytes))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.bytes).into())
    }

    /// `v1:` + base64(nonce ‖ ciphertext ‖ tag); `aad` binds it to where it is stored.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encrypting into a Vec cannot fail for inputs below AES-GCM's 64 GiB bound.
        let ct = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{VERSION}:{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, CryptoError> {
        let body = sealed.strip_prefix("v1:").ok_or(CryptoError::Unreadable)?;
        let raw = B64.decode(body).map_err(|_| CryptoError::Unreadable)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Unreadable);
        }
        let (nonce, ct) = raw.split_at(12);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unreadable)
    }

    /// Wraps a data key under this master key, bound to its organization and id.
    pub fn wrap(&self, data_key: &Key, org: &str) -> String {
        self.seal(&data_key.bytes, &wrap_aad(org, &data_key.id))
    }

    pub fn unwrap_key(&self, wrapped: &str, org: &str, key_id: &str) -> Result<Key, CryptoError> {
        let raw = self.open(wrapped, &wrap_aad(org, key_id))?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| CryptoError::Unreadable)?;
        Ok(Key {
            id: key_id.to_string(),
            bytes,
        })
    }
}

fn wrap_aad(org: &str, key_id: &str) -> String {
    format!("xagent/data-key/{org}/{key_id}")
}

/// Where the master keys come from.
#[derive(Debug, Clone)]
enum Source {
    Environment,
    File(PathBuf),
}

/// The configured master keys, newest (the one that wraps new data keys) first.
#[derive(Debug, Clone)]
pub struct Keyring {
    source: Source,
    keys: Arc<RwLock<Vec<Key>>>,
    /// Which version of the key file was read (it is replaced by rename on every change).
    loaded: Arc<RwLock<Option<FileStamp>>>,
}

type FileStamp = (std::time::SystemTime, u64, u64);

fn modified(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.modified().ok()?, inode, m.len()))
}

impl Keyring {
    /// From `XAGENT_MASTER_KEY` when given, else the key file in `data_dir` (created with
    /// one new key, mode 0600, when missing).
    pub fn load(env_value: Option<&str>, data_dir: &Path) -> Result<Keyring, CryptoError> {
        if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
            let keys = v
                .split(',')
                .map(Key::parse_master)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Keyring {
                source: Source::Environment,
                keys: Arc::new(RwLock::new(keys)),
                loaded: Arc::new(RwLock::new(None)),
            });
        }
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            write_key_file(&path, &[Key::generate_master()])?;
        }
        let stamp = modified(&path);
        let keys = read_key_file(&path)?;
        Ok(Keyring {
            source: Source::File(path),
            keys: Arc::new(RwLock::new(keys)),
            loaded: Arc::new(RwLock::new(stamp)),
        })
    }

    /// Whether `value` (as `XAGENT_MASTER_KEY` takes it: base64 keys, newest first,
    /// separated by commas) holds only valid master keys.
    pub fn check_master_keys(value: &str) -> Result<(), CryptoError> {
        value
            .split(',')
            .try_for_each(|k| Key::parse_master(k).map(|_| ()))
    }

    /// Reads the key file again when another process (`xagent keys rotate`) changed it.
    fn refresh(&self) -> Result<(), CryptoError> {
        let Source::File(path) = &self.source else {
            return Ok(());
        };
        let stamp = modified(path);
        if *self.loaded.read().unwrap_or_else(|e| e.into_inner()) == stamp {
            return Ok(());
        }
        let fresh = read_key_file(path)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = stamp;
        Ok(())
    }

    /// The key new data keys are wrapped with (following a rotation by another process).
    pub fn current(&self) -> Key {
        if let Err(e) = self.refresh() {
            tracing::warn!(error = %e, "cannot re-read the master key file");
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        // `load` never makes an empty ring: the file gets a key, the variable needs one.
        keys.first()
            .cloned()
            .unwrap_or_else(|| Key::master([0; 32]))
    }

    pub fn ids(&self) -> Vec<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().map(|k| k.id.clone()).collect()
    }

    /// The master key with `id`. A key file is read again when the id is unknown, so a
    /// running server follows `xagent keys rotate` without a restart.
    pub fn get(&self, id: &str) -> Result<Key, CryptoError> {
        if let Some(k) = self.find(id) {
            return Ok(k);
        }
        self.refresh()?;
        self.find(id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(id.to_string()))
    }

    fn find(&self, id: &str) -> Option<Key> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().find(|k| k.id == id).cloned()
    }

    /// Puts a new master key first in the key file; returns it. Data keys are re-wrapped
    /// separately (`services::llm::rewrap_data_keys`).
    pub fn rotate(&self) -> Result<Key, CryptoError> {
        let Source::File(path) = &self.source else {
            return Err(CryptoError::FromEnvironment(
                "put the new key first (XAGENT_MASTER_KEY=new,old) and restart; the server re-wraps the data keys when it starts",
            ));
        };
        let mut keys = read_key_file(path)?;
        let new = Key::generate_master();
        keys.insert(0, new.clone());
        write_key_file(path, &keys)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = modified(path);
        Ok(new)
    }

    /// Removes the master keys not in `keep` (and never the current one) from the key file.
    pub fn retire_except(&self, keep: &[String]) -> Result<Vec<String>, CryptoError> {
        let Source::File(path) = &self.source else {
            return Err(CryptoError::FromEnvironment(
                "remove the old key from XAGENT_MASTER_KEY after the data keys are re-wrapped",
            ));
        };
        let (mut kept, mut gone) = (Vec::new(), Vec::new());
        for (i, k) in read_key_file(path)?.into_iter().enumerate() {
            if i == 0 || keep.contains(&k.id) {
                kept.push(k);
            } else {
                gone.push(k.id);
            }
        }
        write_key_file(path, &kept)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = kept;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = modified(path);
        Ok(gone)
    }
}

fn read_key_file(path: &Path) -> Result<Vec<Key>, CryptoError> {
    let text = std::fs::read_to_string(path).map_err(|source| CryptoError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut keys = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let b64 = line.split_whitespace().last().unwrap_or("");
        keys.push(Key::parse_master(b64)?);
    }
    if keys.is_empty() {
        return Err(CryptoError::BadMasterKey(format!(
            "{} holds no key",
            path.display()
        )));
    }
    Ok(keys)
}

/// Written to a temporary file, synced, then renamed over the old one: a crash leaves
/// either the old or the new file, never half of one.
fn write_key_file(path: &Path, keys: &[Key]) -> Result<(), CryptoError> {
    let err = |source| CryptoError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("key.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    let mut text = String::from(
        "# xagent master keys, newest first. Keep a copy somewhere safe: without it the\n# stored provider keys cannot be read.\n",
    );
    for k in keys {
        text.push_str(&format!("{} {}\n", k.id, B64.encode(k.bytes)));
    }
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_row() {
        let k = Key::generate("dk-1".into());
        let sealed = k.seal(b"sk-secret-value-1234", "org-a/openai/organization");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            k.open(&sealed, "org-a/openai/organization").unwrap(),
            b"sk-secret-value-1234"
        );
        assert!(matches!(
            k.open(&sealed, "org-b/openai/organization"),
            Err(CryptoError::Unreadable)
        ));
        let other = Key::generate("dk-2".into());
        assert!(other.open(&sealed, "org-a/openai/organization").is_err());
        // A character in the middle: every bit of it is data (the last one may be padding),
        // and it is replaced by a different one (replacing with a fixed letter was a no-op
        // whenever the letter was already there).
        let mid = sealed.len() / 2;
        let was = sealed.as_bytes()[mid];
        let mut tampered = sealed.clone();
        tampered.replace_range(mid..=mid, if was == b'A' { "B" } else { "A" });
        assert_ne!(tampered, sealed);
        assert!(k.open(&tampered, "org-a/openai/organization").is_err());
    }

    #[test]
    fn a_data_key_unwraps_only_for_its_organization_and_id() {
        let master = Key::generate_master();
        let dk = Key::generate("dk-1".into());
        let wrapped = master.wrap(&dk, "org-a");
        let back = master.unwrap_key(&wrapped, "org-a", "dk-1").unwrap();
        assert_eq!(back.bytes, dk.bytes);
        assert!(master.unwrap_key(&wrapped, "org-b", "dk-1").is_err());
        assert!(master.unwrap_key(&wrapped, "org-a", "dk-2").is_err());
    }

    #[test]
    fn key_file_is_private_rotates_and_retires() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::load(None, dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let first = ring.current();
        // Loading again gives the same key (same id), not a new one.
        assert_eq!(
            Keyring::load(None, dir.path()).unwrap().current().id,
            first.id
        );
        // Another process rotates; this ring finds the new key when asked for it.
        let other = Keyring::load(None, dir.path()).unwrap();
        let new = other.rotate().unwrap();
        assert_eq!(ring.get(&new.id).unwrap().bytes, new.bytes);
        assert_eq!(ring.current().id, new.id);
        assert_eq!(ring.ids(), vec![new.id.clone(), first.id.clone()]);
        let gone = ring.retire_except(&[]).unwrap();
        assert_eq!(gone, vec![first.id.clone()]);
        assert!(matches!(
            Keyring::load(None, dir.path()).unwrap().get(&first.id),
            Err(CryptoError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn environment_keys_are_validated_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let a = B64.encode([1u8; 32]);
        let b = B64.encode([2u8; 32]);
        let ring = Keyring::load(Some(&format!("{a},{b}")), dir.path()).unwrap();
        assert_eq!(ring.ids().len(), 2);
        assert_eq!(ring.current().id, Key::master([1u8; 32]).id);
        assert!(!dir.path().join(KEY_FILE).exists());
        assert!(matches!(
            Keyring::load(Some("c2hvcnQ="), dir.path()),
            Err(CryptoError::BadMasterKey(_))
        ));
        assert!(ring.rotate().is_err());
    }

    #[test]
    fn debug_output_names_the_key_only() {
        let k = Key::master([7u8; 32]);
        assert_eq!(format!("{k:?}"), format!("Key({})", k.id));
    }
}
