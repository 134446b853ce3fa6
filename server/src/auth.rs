//! Bearer tokens: roles, what each role may do, and the token store.
//!
//! A token's secret is `aisle_<id>_<random>`; the store keeps only the SHA-256 of the whole
//! secret, looks the record up by the id in it, and compares hashes in constant time.
//! Tokens persist in `<data-dir>/tokens.json`, rewritten atomically (temp file, fsync,
//! rename, fsync of the directory) on every change: tokens change rarely and the file stays
//! readable by an operator. Each record also holds the token's request budget (a
//! [`Bucket`], in memory only), so budgets exist exactly for the tokens that exist.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::budget::Bucket;
use crate::problem::ApiError;

/// Random bytes in a secret (256 bits).
const SECRET_BYTES: usize = 32;
/// Random bytes in a token id.
const ID_BYTES: usize = 8;
/// Tokens the store holds; creation fails past it.
pub const TOKENS_MAX: usize = 10_000;
/// Longest token name (it is recorded as the actor of every write, so the engine's bound).
pub const TOKEN_NAME_LEN_MAX: usize = aisle_engine::limits::ACTOR_LEN_MAX;
/// The file name of the bootstrap admin token under the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
const STORE_FILE: &str = "tokens.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Ops,
    Channel,
    Pos,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ops => "ops",
            Role::Channel => "channel",
            Role::Pos => "pos",
        }
    }
}

/// What a route does, for the role check. Binding checks (a channel token's channel, a POS
/// token's location) happen in the handlers, where the body is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// No token needed (`/metrics`, `/healthz`, ...).
    Public,
    CatalogRead,
    CatalogWrite,
    StockRead,
    /// Receipts: admin, and POS at its own location.
    StockReceive,
    StockWrite,
    Reservations,
    ReservationRead,
    Tokens,
    /// Operations that act on the engine itself (taking a snapshot): admin only.
    Operations,
    /// Routes of later issues; roles are checked as for the area they will belong to.
    Availability,
}

impl Area {
    pub fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            Area::Public => true,
            Area::CatalogRead => true,
            Area::CatalogWrite | Area::StockWrite | Area::Tokens | Area::Operations => role == Admin,
            Area::StockRead => matches!(role, Admin | Ops | Pos),
            Area::StockReceive => matches!(role, Admin | Pos),
            Area::Reservations => matches!(role, Admin | Channel | Pos),
            Area::ReservationRead | Area::Availability => true,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub channel: Option<String>,
    pub location: Option<String>,
    /// The token's request budget (`budget.rs`), shared with its record.
    pub bucket: Arc<Bucket>,
}

impl Principal {
    /// 403 unless this token may act for `channel`.
    pub fn check_channel(&self, channel: &str) -> Result<(), ApiError> {
        match (&self.role, &self.channel) {
            (Role::Channel, Some(own)) if own != channel => {
                Err(ApiError::Forbidden(format!("this token acts for channel {own:?} only")))
            }
            _ => Ok(()),
        }
    }

    /// 403 unless this token may act at `location`.
    pub fn check_location(&self, location: &str) -> Result<(), ApiError> {
        match (&self.role, &self.location) {
            (Role::Pos, Some(own)) if own != location => {
                Err(ApiError::Forbidden(format!("this token acts at location {own:?} only")))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    id: String,
    name: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Hex SHA-256 of the whole secret.
    sha256: String,
    created_at: String,
    /// The token's request budget; not stored (a restart refills it). Record clones share it,
    /// so rewriting the map on a change keeps every token's state.
    #[serde(skip)]
    bucket: Arc<Bucket>,
}

impl TokenRecord {
    fn principal(&self) -> Principal {
        Principal {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            channel: self.channel.clone(),
            location: self.location.clone(),
            bucket: self.bucket.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    tokens: Vec<TokenRecord>,
}

/// A new token as created; the secret is shown to the caller once and never again.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub secret: String,
    #[schemars(extend("format" = "date-time"))]
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    #[error("token store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("token store {path} is not valid: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("random number generator failed: {0}")]
    Random(String),
}

/// The tokens, in memory, backed by `tokens.json`.
#[derive(Debug)]
pub struct TokenStore {
    dir: PathBuf,
    tokens: RwLock<HashMap<String, TokenRecord>>,
    /// SHA-256 of `AISLE_ADMIN_TOKEN`, when set: an admin token that is never stored.
    env_admin: Option<[u8; 32]>,
    /// The request budget of the `AISLE_ADMIN_TOKEN` token.
    env_admin_bucket: Arc<Bucket>,
    /// Serialises rewrites of the file so two changes never race on the temp file.
    write_lock: tokio::sync::Mutex<()>,
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(len: usize) -> Result<String, TokenStoreError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| TokenStoreError::Random(e.to_string()))?;
    Ok(hex(&bytes))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TokenStoreError + '_ {
    move |source| TokenStoreError::Io { path: path.to_owned(), source }
}

/// Writes `bytes` to `dir/name` so a crash leaves either the old or the new file.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), TokenStoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
    Ok(())
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    crate::dto::rfc3339(ms)
}

impl TokenStore {
    /// Loads `dir/tokens.json` (absent: empty). `env_admin` is `AISLE_ADMIN_TOKEN`.
    pub fn open(dir: &Path, env_admin: Option<&str>) -> Result<Self, TokenStoreError> {
        let path = dir.join(STORE_FILE);
        let file: StoreFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TokenStoreError::Parse { path, source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreFile::default(),
            Err(source) => return Err(TokenStoreError::Io { path, source }),
        };
        let tokens = file.tokens.into_iter().map(|t| (t.id.clone(), t)).collect();
        Ok(TokenStore {
            dir: dir.to_owned(),
            tokens: RwLock::new(tokens),
            env_admin: env_admin.map(sha256),
            env_admin_bucket: Arc::default(),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// On first start (no admin token at all), creates one, writes its secret to
    /// `admin.token` (mode 0600) and returns it so the caller prints it once.
    pub fn bootstrap(&self) -> Result<Option<(String, PathBuf)>, TokenStoreError> {
        let has_admin = self.read().values().any(|t| t.role == Role::Admin);
        if self.env_admin.is_some() || has_admin {
            return Ok(None);
        }
        let (record, secret) = new_record("bootstrap-admin", Role::Admin, None, None)?;
        write_atomically(&self.dir, ADMIN_TOKEN_FILE, format!("{secret}\n").as_bytes(), 0o600)?;
        let mut next = self.read().clone();
        next.insert(record.id.clone(), record);
        self.persist(&next)?;
        *self.write() = next;
        Ok(Some((secret, self.dir.join(ADMIN_TOKEN_FILE))))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, TokenRecord>> {
        // A panic while holding the lock leaves the map whole (every change is one insert or
        // remove), so a poisoned lock is still safe to use.
        self.tokens.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, TokenRecord>> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, tokens: &HashMap<String, TokenRecord>) -> Result<(), TokenStoreError> {
        let mut list: Vec<TokenRecord> = tokens.values().cloned().collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        let bytes = serde_json::to_vec_pretty(&StoreFile { tokens: list })
            .map_err(|source| TokenStoreError::Parse { path: self.dir.join(STORE_FILE), source })?;
        write_atomically(&self.dir, STORE_FILE, &bytes, 0o600)
    }

    /// Finds who a bearer secret belongs to.
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        let presented = sha256(secret);
        if let Some(env) = &self.env_admin {
            if bool::from(env.ct_eq(&presented)) {
                return Some(Principal {
                    id: "env-admin".into(),
                    name: "env-admin".into(),
                    role: Role::Admin,
                    channel: None,
                    location: None,
                    bucket: self.env_admin_bucket.clone(),
                });
            }
        }
        let id = secret.strip_prefix("aisle_")?.split('_').next()?;
        let tokens = self.read();
        let record = tokens.get(id)?;
        let presented = hex(&presented);
        bool::from(record.sha256.as_bytes().ct_eq(presented.as_bytes())).then(|| record.principal())
    }

    /// Creates a token; it is on disk before this returns.
    pub async fn create(
        self: &Arc<Self>,
        name: String,
        role: Role,
        channel: Option<String>,
        location: Option<String>,
    ) -> Result<NewToken, ApiError> {
        let (record, secret) =
            new_record(&name, role, channel, location).map_err(|e| ApiError::Internal(e.to_string()))?;
        let _one_writer = self.write_lock.lock().await;
        let mut next = self.read().clone();
        if next.len() >= TOKENS_MAX {
            return Err(ApiError::Engine(aisle_engine::EngineError::Conflict(aisle_engine::error::Conflict::Other(
                format!("at most {TOKENS_MAX} tokens"),
            ))));
        }
        next.insert(record.id.clone(), record.clone());
        let store = self.clone();
        let next = tokio::task::spawn_blocking(move || store.persist(&next).map(|()| next))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        *self.write() = next;
        Ok(NewToken {
            id: record.id,
            name: record.name,
            role: record.role,
            channel: record.channel,
            location: record.location,
            secret,
            created_at: record.created_at,
        })
    }

    /// Revokes a token at once (in memory first, then on disk). False when unknown.
    pub async fn revoke(self: &Arc<Self>, id: &str) -> Result<bool, ApiError> {
        let _one_writer = self.write_lock.lock().await;
        let next = {
            let mut tokens = self.write();
            if tokens.remove(id).is_none() {
                return Ok(false);
            }
            tokens.clone()
        };
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.persist(&next))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(true)
    }
}

fn new_record(
    name: &str,
    role: Role,
    channel: Option<String>,
    location: Option<String>,
) -> Result<(TokenRecord, String), TokenStoreError> {
    let id = random_hex(ID_BYTES)?;
    let secret = format!("aisle_{id}_{}", random_hex(SECRET_BYTES)?);
    let record = TokenRecord {
        id,
        name: name.to_owned(),
        role,
        channel,
        location,
        sha256: hex(&sha256(&secret)),
        created_at: now_rfc3339(),
        bucket: Arc::default(),
    };
    Ok((record, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_persist_and_revoke() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(TokenStore::open(dir.path(), None).expect("open"));
        let (secret, path) = store.bootstrap().expect("bootstrap").expect("first start creates one");
        assert_eq!(std::fs::read_to_string(&path).expect("admin.token").trim(), secret);
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(store.authenticate(&secret).map(|p| p.role), Some(Role::Admin));
        let made = store.create("web".into(), Role::Channel, Some("web".into()), None).await.expect("create");
        assert!(store.authenticate(&made.secret).is_some());
        assert!(store.authenticate(&format!("{}x", made.secret)).is_none());
        assert!(store.authenticate("aisle_nope_nope").is_none());

        let reopened = Arc::new(TokenStore::open(dir.path(), None).expect("reopen"));
        assert!(reopened.bootstrap().expect("bootstrap").is_none(), "an admin exists already");
        assert_eq!(reopened.authenticate(&made.secret).map(|p| p.role), Some(Role::Channel));
        assert!(reopened.revoke(&made.id).await.expect("revoke"));
        assert!(reopened.authenticate(&made.secret).is_none());
        assert!(!reopened.revoke(&made.id).await.expect("revoke again"));
        let again = TokenStore::open(dir.path(), None).expect("reopen");
        assert!(again.authenticate(&made.secret).is_none());
    }

    #[tokio::test]
    async fn a_token_keeps_its_bucket_while_others_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(TokenStore::open(dir.path(), Some("env-admin-secret-0123")).expect("open"));
        let web = store.create("web".into(), Role::Channel, Some("web".into()), None).await.expect("create");
        let bucket = |secret: &str| store.authenticate(secret).map(|p| p.bucket).expect("known token");
        let first = bucket(&web.secret);
        let other = store.create("app".into(), Role::Channel, Some("app".into()), None).await.expect("create");
        assert!(Arc::ptr_eq(&first, &bucket(&web.secret)), "creating another token keeps this one's budget");
        assert!(!Arc::ptr_eq(&first, &bucket(&other.secret)), "each token has its own");
        assert!(store.revoke(&other.id).await.expect("revoke"));
        assert!(Arc::ptr_eq(&first, &bucket(&web.secret)), "revoking another token keeps it too");
        let env = bucket("env-admin-secret-0123");
        assert!(Arc::ptr_eq(&env, &bucket("env-admin-secret-0123")), "the env admin token has one bucket");
    }

    #[test]
    fn env_admin_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::open(dir.path(), Some("s3cret")).expect("open");
        assert!(store.bootstrap().expect("bootstrap").is_none());
        assert!(!dir.path().join(ADMIN_TOKEN_FILE).exists());
        assert_eq!(store.authenticate("s3cret").map(|p| p.role), Some(Role::Admin));
        assert!(store.authenticate("s3cre").is_none());
    }
}
