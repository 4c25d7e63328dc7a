use std::time::Duration;

use super::*;

fn overrides(text: &str) -> Overrides {
    Overrides::with_table(Table::parse(text).unwrap(), None, Arc::default())
}

#[test]
fn tenants_inherit_the_defaults_field_by_field() {
    let t = Table::parse(
        r#"
        [defaults]
        ingest_rows_per_second = 100
        max_active_series = 10

        [tenants.acme]
        max_active_series = 5
        "#,
    )
    .unwrap();
    assert_eq!(t.of("acme").ingest_rows_per_second, 100.0);
    assert_eq!(t.of("acme").max_active_series, 5);
    assert_eq!(t.of("other").max_active_series, 10);
    // Built-in defaults under both.
    assert_eq!(t.of("acme").max_concurrent_queries, 16);
    assert_eq!(
        Table::parse("").unwrap().of("x").as_ref(),
        &Limits::default()
    );
}

#[test]
fn a_bad_file_is_refused_whole() {
    for bad in [
        "[defaults]\nrows_per_second = 1",
        "[tenants.acme]\nmax_active_series = -1",
        "[tenants.acme]\ningest_rows_per_second = -5.0",
        "[tenants.\"../x\"]\nmax_active_series = 1",
        "[defaults]\ningest_burst_rows = 10",
        "[other]\n",
        "[tenants]\nacme = 3",
    ] {
        assert!(Table::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_rate_refuses_with_the_wait_and_other_tenants_are_not_touched() {
    let o = overrides(
        "[tenants.acme]\ningest_rows_per_second = 100\ningest_burst_rows = 200\n\
         [tenants.slow]\ningest_bytes_per_second = 1000",
    );
    assert_eq!(o.admit_ingest("acme", 150, 10), Ok(()));
    let r = o.admit_ingest("acme", 100, 10).unwrap_err();
    assert_eq!(r.reason, "rate_rows");
    // 50 tokens left, 100 asked: half a second at 100/s.
    let wait = r.retry_after.unwrap();
    assert!(
        wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    assert_eq!(r.retry_after_secs(), Some(1));
    // What was refused took nothing.
    assert_eq!(o.admit_ingest("acme", 50, 10), Ok(()));
    // Larger than the burst: never, so no retry.
    let r = o.admit_ingest("acme", 201, 10).unwrap_err();
    assert_eq!((r.reason, r.retry_after), ("burst", None));
    // Other tenants have their own buckets, or none.
    assert_eq!(o.admit_ingest("other", 1_000_000, 1 << 30), Ok(()));
    assert_eq!(o.admit_ingest("slow", 1_000_000, 600), Ok(()));
    assert_eq!(
        o.admit_ingest("slow", 1, 600).unwrap_err().reason,
        "rate_bytes"
    );
}

#[test]
fn series_past_the_limit_are_refused_per_point() {
    let o = overrides("[tenants.acme]\nmax_active_series = 2");
    assert_eq!(o.admit_series("acme", &[1, 2, 1]), None);
    assert_eq!(o.admit_series("acme", &[3, 1]), Some(vec![false, true]));
    assert_eq!(o.admit_series("other", &[3, 4, 5]), None);
}

#[test]
fn query_slots_are_per_tenant() {
    let o = overrides(
        "[tenants.acme]\nmax_concurrent_queries = 1\n[tenants.free]\nmax_concurrent_queries = 0",
    );
    let held = o.query_permit("acme").unwrap();
    assert!(held.is_some());
    assert_eq!(
        o.query_permit("acme").unwrap_err().reason,
        "concurrent_queries"
    );
    assert!(o.query_permit("other").unwrap().is_some());
    assert!(o.query_permit("free").unwrap().is_none());
    drop(held);
    assert!(o.query_permit("acme").unwrap().is_some());
}

#[test]
fn query_bounds_only_lower_the_services_own() {
    let node = QueryBounds {
        time: Duration::from_secs(30),
        memory_bytes: 1 << 30,
        answer_bytes: 1 << 26,
    };
    assert_eq!(Limits::default().query(node), node);
    let tenant = Limits {
        max_query_seconds: 5.0,
        max_query_memory_bytes: 1 << 40,
        max_answer_bytes: 1000,
        ..Limits::default()
    };
    let b = tenant.query(node);
    assert_eq!(b.time, Duration::from_secs(5));
    assert_eq!(b.memory_bytes, 1 << 30);
    assert_eq!(b.answer_bytes, 1000);
}

#[test]
fn reload_takes_a_good_file_and_keeps_the_limits_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.toml");
    std::fs::write(&path, "[tenants.acme]\nmax_active_series = 1").unwrap();
    let o = Overrides::load(
        &LimitsConfig {
            file: Some(path.clone()),
        },
        Arc::default(),
    )
    .unwrap();
    assert_eq!(o.limits("acme").max_active_series, 1);
    std::fs::write(&path, "[tenants.acme]\nmax_active_series = 3").unwrap();
    o.reload(true);
    assert_eq!(o.limits("acme").max_active_series, 3);
    std::fs::write(&path, "[tenants.acme]\nmax_active_series = \"many\"").unwrap();
    o.reload(true);
    assert_eq!(o.limits("acme").max_active_series, 3);
    assert!(Overrides::load(&LimitsConfig { file: Some(path) }, Arc::default()).is_err());
}
