//! Starting Baton as a new user would: against a database that does not exist yet (Baton creates
//! it), and against a Postgres that is not there (one line on stderr naming the setting to fix,
//! and a non-zero exit status).

use std::process::Output;

use baton_e2e::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound address").port()
}

async fn migrations_applied(env: &TestEnv) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&env.db)
        .await
        .expect("the migrations table exists")
}

#[tokio::test]
async fn migrate_creates_a_database_that_does_not_exist_and_applies_the_migrations() {
    let env = TestEnv::without_database();
    let output = env.baton(["migrate"]).output().await.expect("run baton migrate");
    assert!(output.status.success(), "{}", describe(&output));
    let logs = text(&output.stdout);
    assert!(logs.contains("created the database"), "{}", describe(&output));
    assert!(migrations_applied(&env).await > 0);

    // The second time the database is there: nothing to create, nothing to apply.
    let again = env.baton(["migrate"]).output().await.expect("run baton migrate again");
    assert!(again.status.success(), "{}", describe(&again));
    assert!(
        !text(&again.stdout).contains("created the database"),
        "{}",
        describe(&again)
    );
}

#[tokio::test]
async fn serve_creates_a_database_that_does_not_exist_and_becomes_ready() {
    let env = TestEnv::without_database();
    let app = env.spawn_app().await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(migrations_applied(&env).await > 0);
    app.stop().await;
}

#[tokio::test]
async fn cleanup_against_a_database_that_does_not_exist_stops_without_creating_it() {
    let env = TestEnv::without_database();
    std::fs::create_dir_all(env.storage_dir().join("blobs")).unwrap();
    std::fs::create_dir_all(env.storage_dir().join("tmp")).unwrap();
    let output = env.baton(["cleanup"]).output().await.expect("run baton cleanup");
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("database {} does not exist", env.db_name)) && stderr.contains("BATON_DATABASE_URL"),
        "{}",
        describe(&output)
    );
    let admin = admin_pool().await;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&env.db_name)
        .fetch_one(&admin)
        .await
        .unwrap();
    admin.close().await;
    assert!(!exists, "cleanup created {}", env.db_name);
}

#[tokio::test]
async fn start_up_against_an_unreachable_postgres_exits_non_zero_with_one_line_naming_the_setting() {
    let env = TestEnv::without_database();
    let port = closed_port();
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/{}", env.db_name);
    for command in ["migrate", "serve"] {
        let output = env
            .baton([command])
            .env("BATON_DATABASE_URL", &url)
            .env("BATON_DATABASE_WAIT", "0s")
            .output()
            .await
            .expect("run baton");
        assert!(!output.status.success(), "baton {command}: {}", describe(&output));
        let stderr = text(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "baton {command}: {}", describe(&output));
        let expected = format!("error: cannot reach Postgres at 127.0.0.1:{port} (BATON_DATABASE_URL): ");
        assert!(
            lines[0].starts_with(&expected),
            "baton {command}: {}",
            describe(&output)
        );
        assert!(
            !stderr.contains("s3cret"),
            "baton {command} printed the password: {stderr}"
        );
    }
}
