//! The stores under test: a fresh SQLite file, or a fresh PostgreSQL database that is
//! dropped afterwards, so tests never see each other's rows.

use std::future::Future;
use std::sync::Arc;

use lumagate::store::postgres::{PgStore, PoolLimits};
use lumagate::store::sqlite::SqliteStore;
use lumagate::store::Store;
use sqlx::{Connection, Executor, PgConnection};

/// The server the PostgreSQL half runs on (`scripts/test.sh` starts it if it is down).
pub fn admin_url() -> String {
    std::env::var("LUMAGATE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `admin_url` with another database name.
pub fn database_url(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("LUMAGATE_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A database that exists until dropped with [`FreshDatabase::drop_it`].
pub struct FreshDatabase {
    pub name: String,
    pub url: String,
}

impl FreshDatabase {
    pub async fn create() -> FreshDatabase {
        let name = format!("lg_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for the store contract tests ({}): {e}; `scripts/test.sh` starts it", admin_url())
        });
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a test database");
        FreshDatabase { url: database_url(&name), name }
    }

    pub async fn drop_it(self) {
        if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
            let _ = admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str()).await;
        }
    }
}

/// Runs `test` on a fresh SQLite store.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db")).await.expect("opening SQLite");
    test(Arc::new(store)).await;
}

/// Runs `test` on a fresh PostgreSQL database, dropping it afterwards even if the test panics.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = FreshDatabase::create().await;
    let store = PgStore::open(&db.url, &PoolLimits::default()).await.expect("opening PostgreSQL");
    let store = Arc::new(store);
    let outcome = tokio::spawn(test(store.clone())).await;
    store.pool().close().await;
    db.drop_it().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares each contract test once per store.
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::backends::on_sqlite(super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::backends::on_postgres(super::$name).await
                }
            )*
        }
    };
}
