//! Benchmark: start-up time and memory with a large account, and list pages per second under
//! `wrk`. Run with
//!
//! ```sh
//! cargo run --release -p stripe-sandbox --example bench -- [TOTAL_OBJECTS] [SECONDS]
//! ```
//!
//! (defaults: 1,000,000 objects, 15 s; needs `wrk` on the PATH). Results go to
//! docs/performance.md by hand, with the machine and date.

use std::io::Write;
use std::time::Instant;
use stripe_sandbox::{Config, Mode, Profile};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let total: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seconds: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(15);
    // Charges bring a payment intent and (mostly) a balance transaction each, so about a third of
    // the objects are charges.
    let unit = total / 100;
    let profile = Profile {
        customers: unit * 9,
        charges: unit * 28,
        refunds: unit * 3,
        disputes: unit,
        products: unit,
        prices: unit * 3,
        payouts: unit,
    };
    let running =
        stripe_sandbox::start(Config { listen: "127.0.0.1:0".into(), test_rate: None, live_rate: None, ..Config::default() }).await?;
    let rss0 = rss_mb();
    let started = Instant::now();
    let s = running.sandbox.clone();
    let account = tokio::task::spawn_blocking(move || s.create_account(Mode::Test, Some(1), true, &profile)).await?;
    let startup = started.elapsed();
    let acc = running.sandbox.account(&account).expect("account exists");
    let (objects, events, cursors) = {
        let a = acc.read().expect("lock");
        let objects: usize = a.lists.values().map(|c| c.items.len()).sum();
        let charges = &a.lists[&stripe_sandbox::store::Kind::Charges].items;
        let step = (charges.len() / 1000).max(1);
        let cursors: Vec<String> = charges.iter().step_by(step).map(|o| o.id.to_string()).collect();
        (objects, a.events.len(), cursors)
    };
    let rss = rss_mb();
    println!(
        "objects: {objects} (+ {events} events), generated in {:.1} s, RSS {:.0} MB (+{:.0} MB)",
        startup.as_secs_f64(),
        rss,
        rss - rss0
    );

    let lua = std::env::temp_dir().join("sandbox-bench.lua");
    let mut f = std::fs::File::create(&lua)?;
    writeln!(f, "local cursors = {{{}}}", cursors.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(","))?;
    writeln!(f, "wrk.headers[\"Authorization\"] = \"Bearer sk_test_sandbox_platform\"")?;
    writeln!(f, "wrk.headers[\"Stripe-Account\"] = \"{account}\"")?;
    writeln!(f, "local i = 0")?;
    writeln!(
        f,
        "request = function() i = i + 1; return wrk.format(\"GET\", \"/v1/charges?limit=100&starting_after=\" .. cursors[(i % #cursors) + 1]) end"
    )?;
    writeln!(
        f,
        "done = function(summary, latency, requests) io.write(string.format(\"non2xx=%d errors=%d\\n\", summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout)) end"
    )?;
    drop(f);
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            "-c32",
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
            lua.to_str().unwrap_or_default(),
            &format!("{}/", running.url()),
        ])
        .output()
        .await?;
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    running.stop().await;
    Ok(())
}
