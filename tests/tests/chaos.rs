//! Ten crash cycles of `halfveil chaos` in every CI run: SIGKILLs of the identity manager
//! (at least a third of the cycles) and the banks under steady payments, and afterwards no
//! acknowledged transfer lost or doubled, the nodes converged, the supply conserved and the
//! chain replayed from genesis. The seed is random and printed; a failure names it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use halfveil_tests::{describe, halfveil, run_bounded};

#[test]
fn ten_crash_cycles_lose_and_double_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "chaos", "--cycles", "10", "--dir"])
            .arg(dir.path().join("chaos")),
        Duration::from_secs(900),
    );
    assert!(output.status.success(), "chaos: {}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["doubled"], 0, "{report}");
    assert_eq!(report["supply_conserved"], true, "{report}");
    assert_eq!(report["replay_ok"], true, "{report}");
    assert!(report["im_kills"].as_u64().unwrap() >= 4, "{report}");
    assert!(report["acknowledged"].as_u64().unwrap() > 0, "{report}");
    assert!(report["resubmitted"].as_u64().unwrap() > 0, "{report}");
}
