use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use zentoria_core::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database, on the backend chosen once at startup.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Db {
    /// Opens the database at `url`: SQLite in WAL mode with foreign keys and a busy timeout
    /// (creating the file), or a PostgreSQL pool.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
            Ok(Db::Postgres(pool))
        } else {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::invalid(format!("bad SQLite URL {url:?}: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if let Some(dir) = opts.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::internal(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.clamp(1, 8))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| Error::Unavailable(format!("cannot open SQLite database: {e}")))?;
            Ok(Db::Sqlite(pool))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations. On SQLite, an existing database that has pending
    /// migrations is first copied beside itself (`VACUUM INTO`), so an upgrade can be undone.
    /// Returns the path of that copy, if one was made.
    pub async fn migrate(&self) -> Result<Option<PathBuf>> {
        let backup = match self {
            Db::Sqlite(pool) => backup_before_migrating(pool, &SQLITE_MIGRATIONS).await?,
            Db::Postgres(_) => None,
        };
        let res = match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        res.map_err(|e| Error::internal(format!("migration failed: {e}")))?;
        Ok(backup)
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        crate::on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))
            .map(|_| ())
            .map_err(|e| Error::Unavailable(format!("database unreachable: {e}")))
    }

    pub fn pool_stats(&self) -> PoolStats {
        crate::on_db!(self, pool => PoolStats {
            size: pool.size(),
            idle: pool.num_idle() as u32,
            max: pool.options().get_max_connections(),
        })
    }

    pub async fn close(&self) {
        crate::on_db!(self, pool => pool.close().await)
    }
}

async fn backup_before_migrating(
    pool: &SqlitePool,
    migrator: &Migrator,
) -> Result<Option<PathBuf>> {
    let applied: Vec<i64> =
        match sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            // No migrations table: a brand-new database, nothing to keep.
            Err(_) => return Ok(None),
        };
    if applied.is_empty() {
        return Ok(None);
    }
    let pending = migrator
        .iter()
        .any(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version));
    if !pending {
        return Ok(None);
    }
    let main: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(pool)
            .await
            .map_err(crate::db_err)?;
    let latest = applied.iter().max().copied().unwrap_or(0);
    let target = backup_path(Path::new(&main), latest);
    sqlx::query("VACUUM INTO $1")
        .bind(target.display().to_string())
        .execute(pool)
        .await
        .map_err(|e| Error::internal(format!("backup before migrating failed: {e}")))?;
    tracing::info!(backup = %target.display(), "copied the database before migrating");
    Ok(Some(target))
}

fn backup_path(db: &Path, version: i64) -> PathBuf {
    let stamp = zentoria_core::time::now_ms();
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "zentoria.db".into());
    db.with_file_name(format!("{name}.before-migration-v{version}-{stamp}.bak"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn migrator(dir: &Path, files: &[(&str, &str)]) -> Migrator {
        for (name, sql) in files {
            std::fs::write(dir.join(name), sql).unwrap();
        }
        Migrator::new(dir).await.unwrap()
    }

    #[tokio::test]
    async fn an_existing_database_is_copied_before_pending_migrations() {
        let tmp = tempfile::tempdir().unwrap();
        let migrations = tmp.path().join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        let url = format!("sqlite://{}", tmp.path().join("z.db").display());
        let Db::Sqlite(pool) = Db::connect(&url, 1).await.unwrap() else {
            unreachable!()
        };

        let v1 = migrator(
            &migrations,
            &[("1_first.sql", "CREATE TABLE a (x INTEGER);")],
        )
        .await;
        // A brand-new database has nothing worth keeping.
        assert_eq!(backup_before_migrating(&pool, &v1).await.unwrap(), None);
        v1.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO a (x) VALUES (42)")
            .execute(&pool)
            .await
            .unwrap();
        // Nothing pending, nothing copied.
        assert_eq!(backup_before_migrating(&pool, &v1).await.unwrap(), None);

        let v2 = migrator(
            &migrations,
            &[("2_second.sql", "CREATE TABLE b (y INTEGER);")],
        )
        .await;
        let backup = backup_before_migrating(&pool, &v2)
            .await
            .unwrap()
            .expect("a copy");
        assert!(
            backup
                .file_name()
                .unwrap()
                .to_string_lossy()
                .contains("before-migration-v1")
        );
        v2.run(&pool).await.unwrap();

        let copy = SqlitePool::connect(&format!("sqlite://{}", backup.display()))
            .await
            .unwrap();
        let x: i64 = sqlx::query_scalar("SELECT x FROM a")
            .fetch_one(&copy)
            .await
            .unwrap();
        assert_eq!(x, 42);
        let has_b: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'")
            .fetch_one(&copy)
            .await
            .unwrap();
        assert_eq!(
            has_b, 0,
            "the copy is the database as it was before migrating"
        );
    }

    #[tokio::test]
    async fn numbered_placeholders_bind_on_sqlite() {
        // The repositories write `$n` once for both backends; SQLite must bind them by number.
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        let (a, b): (i64, String) = sqlx::query_as("SELECT $2 + 0, $1")
            .bind("one")
            .bind(2i64)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((a, b.as_str()), (2, "one"));
    }
}
