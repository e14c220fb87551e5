//! mesh-bench: failover time and write throughput of a real 3-node mesh (not run in CI).
//!
//! ```text
//! mesh-bench failover [--trials N] [--heartbeat DUR] [--election-timeout DUR] [--meshd-timing]
//! mesh-bench writes   [--secs S] [--clients 1,64] [--via leader|follower] [timing flags]
//! mesh-bench all      (both, default parameters)
//! ```
//! Timing flags default to the harness's (150ms heartbeat, 1000ms election timeout);
//! `--meshd-timing` leaves meshd's own defaults. See tests/bench/README.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_proto::v1::SetSettingRequest;
use mesh_tests::{wait_for, TestCluster};

struct Opts {
    trials: usize,
    secs: u64,
    clients: Vec<usize>,
    via_follower: bool,
    heartbeat: Option<String>,
    election: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: mesh-bench <failover|writes|all> [--trials N] [--secs S] [--clients 1,64] \
         [--via leader|follower] [--heartbeat DUR] [--election-timeout DUR] [--meshd-timing]"
    );
    std::process::exit(2)
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts {
        trials: 10,
        secs: 10,
        clients: vec![1, 64],
        via_follower: false,
        heartbeat: Some("150ms".into()),
        election: Some("1000ms".into()),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--trials" => o.trials = val().parse().unwrap_or_else(|_| usage()),
            "--secs" => o.secs = val().parse().unwrap_or_else(|_| usage()),
            "--clients" => {
                o.clients = val()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--via" => {
                o.via_follower = match val().as_str() {
                    "leader" => false,
                    "follower" => true,
                    _ => usage(),
                }
            }
            "--heartbeat" => o.heartbeat = Some(val()),
            "--election-timeout" => o.election = Some(val()),
            "--meshd-timing" => {
                o.heartbeat = None;
                o.election = None;
            }
            _ => usage(),
        }
    }
    o
}

fn cluster(o: &Opts) -> TestCluster {
    TestCluster::builder(3)
        .timing(o.heartbeat.as_deref(), o.election.as_deref())
        .start()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// kill -9 the leader, time until the first successful write through a survivor, restart it,
/// wait until it has caught up. Repeated `trials` times.
fn failover(o: &Opts) {
    let mut c = cluster(o);
    let mut times = Vec::new();
    for t in 0..o.trials {
        let old = c.leader();
        let li = c.index_of(old).unwrap();
        let survivors: Vec<usize> = (0..3).filter(|&i| i != li).collect();
        let mut clients: Vec<_> = survivors.iter().map(|&i| c.meshctl_client(i).cluster).collect();
        c.kill9(li);
        let t0 = Instant::now();
        let value = format!("{}ms", 20_000 + t);
        let mut k = 0usize;
        let elapsed = c.rt().block_on(async {
            loop {
                let n = clients.len();
                let cl = &mut clients[k % n];
                k += 1;
                let mut req = tonic::Request::new(SetSettingRequest {
                    name: "leader_grace".into(),
                    value: value.clone(),
                });
                req.set_timeout(Duration::from_secs(2));
                if cl.set_setting(req).await.is_ok() {
                    return t0.elapsed();
                }
                if t0.elapsed() > Duration::from_secs(60) {
                    panic!("trial {t}: no successful write within 60 s of killing the leader");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        println!("trial {t}: leader {old} killed, first committed write after {elapsed:?}");
        times.push(elapsed);
        c.restart(li);
        let new = c.wait_leader(Duration::from_secs(30));
        let ni = c.index_of(new).unwrap();
        let commit = c.status(ni).map_err(|o| o.describe()).unwrap().commit_index;
        c.wait_applied(li, commit, Duration::from_secs(60));
        c.wait_setting(li, "leader_grace", &value, true, Duration::from_secs(30));
    }
    times.sort();
    println!(
        "failover over {} trials: median {:?}, p90 {:?}, max {:?}, min {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        times.last().copied().unwrap_or_default(),
        times.first().copied().unwrap_or_default()
    );
}

/// `clients` concurrent SetSetting loops for `secs` seconds; prints committed proposals/s.
fn writes(o: &Opts) {
    let c = cluster(o);
    let li = c.leader_index();
    let via = if o.via_follower {
        (0..3).find(|&i| i != li).unwrap()
    } else {
        li
    };
    println!(
        "writes through node {via} ({})",
        if o.via_follower { "follower" } else { "leader" }
    );
    for &n in &o.clients {
        let clients: Vec<_> = (0..n).map(|_| c.meshctl_client(via).cluster).collect();
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let secs = o.secs;
        let (elapsed, lat) = c.rt().block_on(async {
            let t0 = Instant::now();
            let mut tasks = Vec::new();
            for (w, mut cl) in clients.into_iter().enumerate() {
                let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let req = SetSettingRequest {
                            name: "leader_grace".into(),
                            value: format!("{}ms", 10_000 + (w as u64 * 1000 + k) % 100_000),
                        };
                        k += 1;
                        let s = Instant::now();
                        match cl.set_setting(req).await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                lat.push(s.elapsed());
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    lat
                }));
            }
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            (t0.elapsed(), lat)
        });
        let mut lat = lat;
        lat.sort();
        let okn = ok.load(Ordering::Relaxed);
        println!(
            "{n:>3} clients: {okn} committed SetSetting in {:.1}s = {:.0} proposals/s \
             (failed {}; latency p50 {:?}, p99 {:?})",
            elapsed.as_secs_f64(),
            okn as f64 / elapsed.as_secs_f64(),
            failed.load(Ordering::Relaxed),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    // Sanity: the cluster still agrees after the load.
    wait_for(
        "the cluster to agree on a leader after the load",
        Duration::from_secs(30),
        || c.agreed_leader(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let o = parse(&args[1..]);
    match cmd.as_str() {
        "failover" => failover(&o),
        "writes" => writes(&o),
        "all" => {
            failover(&o);
            writes(&o);
        }
        _ => usage(),
    }
}
