//! The "accessible agents" data set shared by `benches/accessible.rs` (criterion) and
//! `benches/c10k.rs` (HTTP load): 100 organizations, 10,000 users (+ one bench user),
//! 100,000 agents, one API token per user. Deterministic (splitmix64, fixed seed) except
//! for the UUIDv7 ids. Rows go straight into the migrated schema with plain rusqlite, in
//! one transaction with foreign keys off; `PRAGMA foreign_key_check` is verified after.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

pub const ORGS: usize = 100;
pub const USERS: usize = 10_000;
pub const AGENTS: usize = 100_000;
/// Organization 0 is the "big" one: 5 % of all agents (about 5,000); the other 99 share
/// the rest (about 960 each).
pub const BIG_ORG: usize = 0;
/// The bench user is a plain member of these 20 organizations.
pub fn bench_user_orgs() -> Vec<usize> {
    (0..ORGS).step_by(5).collect()
}
pub const BENCH_EMAIL: &str = "bench@example.com";
/// A word in about 2 % of agent names (the search term of the benches).
pub const SEARCH_WORD: &str = "quasar";
const WORDS: [&str; 50] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "quasar", "nebula", "comet", "orbit",
    "photon", "quark", "pulsar", "nova", "galaxy", "meteor", "lunar", "solar", "astro", "cosmo",
    "stellar", "vector", "matrix", "tensor", "kernel", "socket", "packet", "router", "ledger",
    "beacon",
];

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn percent(&mut self) -> usize {
        self.below(100)
    }
}

/// What the load generator needs from a seeded data set.
pub struct Manifest {
    pub org_ids: Vec<String>,
    pub bench_user_id: String,
}

/// The extra organizations user `u` belongs to, besides its primary one (`u % ORGS`).
fn extra_orgs(u: usize) -> [usize; 2] {
    [(u * 7 + 13) % ORGS, (u * 31 + 57) % ORGS]
}

fn token_for(rng: &mut Rng) -> String {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    format!("xa_{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Creates the database at `db` (which must not exist) and, when `out_dir` is given,
/// writes `tokens.tsv` (token, organization id, role: one line per user, for the user's
/// primary organization) and `agents.tsv` (organization id, agent id: the agents of
/// `organization` or `public` visibility, which every member may read).
pub fn build(db: &Path, out_dir: Option<&Path>) -> Manifest {
    xagent::db::migrate_only(db).unwrap();
    let mut conn = Connection::open(db).unwrap();
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = OFF", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576; PRAGMA foreign_keys = OFF;",
    )
    .unwrap();
    let manifest = seed(&mut conn, out_dir);
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0, "the generated data set breaks a foreign key");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    manifest
}

fn seed(conn: &mut Connection, out_dir: Option<&Path>) -> Manifest {
    let mut rng = Rng(0x00c1_0c10);
    let base = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let at = |ms: i64| xagent::domain::fmt_time(base + chrono::Duration::milliseconds(ms));
    let now = xagent::domain::fmt_time(chrono::Utc::now());
    let id = || uuid::Uuid::now_v7().to_string();

    let tx = conn.transaction().unwrap();
    let mut tokens_out = Vec::new();
    let mut agents_out = Vec::new();
    let manifest;
    {
        let mut ins_user = tx
            .prepare(
                "INSERT INTO users (id, email, name, password_hash, is_superuser, created_at, updated_at)
                 VALUES (?1, ?2, ?3, NULL, 0, ?4, ?4)",
            )
            .unwrap();
        let mut ins_org = tx
            .prepare(
                "INSERT INTO organizations (id, name, slug, kind, plan, created_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'team', 'enterprise', ?4, ?5, ?5)",
            )
            .unwrap();
        let mut ins_member = tx
            .prepare(
                "INSERT OR IGNORE INTO organization_members (organization_id, user_id, role, joined_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut ins_team = tx
            .prepare(
                "INSERT INTO teams (id, organization_id, name, created_by, created_at, updated_at)
                 VALUES (?1, ?2, 'Team A', ?3, ?4, ?4)",
            )
            .unwrap();
        let mut ins_team_member = tx
            .prepare(
                "INSERT INTO team_members (organization_id, team_id, user_id, added_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut ins_agent = tx
            .prepare(
                "INSERT INTO agents (id, organization_id, user_id, name, description, visibility,
                                     model, system_prompt, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'gpt-4o-mini', 'You are a helpful assistant.', ?7, ?7)",
            )
            .unwrap();
        let mut ins_share = tx
            .prepare(
                "INSERT OR IGNORE INTO resource_shares
                     (organization_id, resource_type, resource_id, principal_type, principal_id, created_at)
                 VALUES (?1, 'agent', ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        let mut ins_token = tx
            .prepare(
                "INSERT INTO api_tokens (id, user_id, organization_id, name, token_hash, token_hint, created_at)
                 VALUES (?1, ?2, ?3, 'load', ?4, ?5, ?6)",
            )
            .unwrap();

        let t0 = at(0);
        let user_ids: Vec<String> = (0..USERS).map(|_| id()).collect();
        for (u, uid) in user_ids.iter().enumerate() {
            ins_user
                .execute(params![
                    uid,
                    format!("user{u}@example.com"),
                    format!("User {u}"),
                    t0
                ])
                .unwrap();
        }
        let bench_user = id();
        ins_user
            .execute(params![bench_user, BENCH_EMAIL, "Bench User", t0])
            .unwrap();
        // Primary members of organization o: users u with u % ORGS == o (100 each); the
        // first is the owner, the second an admin, the rest members.
        let org_ids: Vec<String> = (0..ORGS).map(|_| id()).collect();
        let mut team_ids = Vec::with_capacity(ORGS);
        for (o, oid) in org_ids.iter().enumerate() {
            ins_org
                .execute(params![
                    oid,
                    format!("Organization {o}"),
                    format!("org-{o:03}"),
                    user_ids[o],
                    t0
                ])
                .unwrap();
            let tid = id();
            ins_team
                .execute(params![tid, oid, user_ids[o], t0])
                .unwrap();
            team_ids.push(tid);
        }
        for (u, uid) in user_ids.iter().enumerate() {
            let o = u % ORGS;
            let role = match u / ORGS {
                0 => "owner",
                1 => "admin",
                _ => "member",
            };
            ins_member
                .execute(params![org_ids[o], uid, role, t0])
                .unwrap();
            // 20 primary members per organization are in its team.
            if (2..22).contains(&(u / ORGS)) {
                ins_team_member
                    .execute(params![org_ids[o], team_ids[o], uid, t0])
                    .unwrap();
            }
            let token = token_for(&mut rng);
            ins_token
                .execute(params![
                    id(),
                    uid,
                    org_ids[o],
                    sha256_hex(&token),
                    format!("xa_…{}", &token[token.len() - 4..]),
                    now
                ])
                .unwrap();
            tokens_out.push(format!("{token}\t{}\t{role}\n", org_ids[o]));
        }
        for (u, uid) in user_ids.iter().enumerate() {
            for o in extra_orgs(u) {
                ins_member
                    .execute(params![org_ids[o], uid, "member", t0])
                    .unwrap();
            }
        }
        let bench_orgs = bench_user_orgs();
        for (i, &o) in bench_orgs.iter().enumerate() {
            ins_member
                .execute(params![org_ids[o], bench_user, "member", t0])
                .unwrap();
            if i % 2 == 0 {
                ins_team_member
                    .execute(params![org_ids[o], team_ids[o], bench_user, t0])
                    .unwrap();
            }
        }

        // Agents in time order, 31 ms apart. 60 % private, 30 % organization, 5 % team
        // (shared with the organization's team), 5 % public. 3 % of private agents are
        // shared with another primary member; in the bench user's organizations 2 % more
        // are shared with the bench user.
        for i in 0..AGENTS {
            let o = if rng.percent() < 5 {
                BIG_ORG
            } else {
                1 + rng.below(ORGS - 1)
            };
            let oid = &org_ids[o];
            let owner = &user_ids[o + ORGS * rng.below(USERS / ORGS)];
            let aid = id();
            let created = at(i as i64 * 31);
            let p = rng.percent();
            let visibility = match p {
                0..60 => "private",
                60..90 => "organization",
                90..95 => "team",
                _ => "public",
            };
            let name = format!(
                "{} {} agent {i}",
                WORDS[rng.below(WORDS.len())],
                WORDS[rng.below(WORDS.len())]
            );
            ins_agent
                .execute(params![
                    aid,
                    oid,
                    owner,
                    name,
                    "A generated agent.",
                    visibility,
                    created
                ])
                .unwrap();
            match visibility {
                "team" => {
                    ins_share
                        .execute(params![oid, aid, "team", team_ids[o], created])
                        .unwrap();
                }
                "private" => {
                    if rng.percent() < 3 {
                        let to = &user_ids[o + ORGS * rng.below(USERS / ORGS)];
                        ins_share
                            .execute(params![oid, aid, "user", to, created])
                            .unwrap();
                    }
                    if bench_orgs.contains(&o) && rng.percent() < 2 {
                        ins_share
                            .execute(params![oid, aid, "user", bench_user, created])
                            .unwrap();
                    }
                }
                _ => agents_out.push(format!("{oid}\t{aid}\n")),
            }
        }
        manifest = Manifest {
            org_ids,
            bench_user_id: bench_user,
        };
    }
    tx.commit().unwrap();
    if let Some(dir) = out_dir {
        let mut f = std::fs::File::create(dir.join("tokens.tsv")).unwrap();
        f.write_all(tokens_out.concat().as_bytes()).unwrap();
        let mut f = std::fs::File::create(dir.join("agents.tsv")).unwrap();
        f.write_all(agents_out.concat().as_bytes()).unwrap();
    }
    manifest
}
