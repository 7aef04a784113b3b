//! The kit's own checks: a driver that ends fails the run, naming its host; a full command
//! queue is told apart from a stopped driver.

use std::time::Duration;

use fleetmesh::overlay::MasterCommand;

use super::{fault, OverlayFleet};
use crate::{CommandError, RunError};

const SEC: Duration = Duration::from_secs(1);

fn converged(seed: u64) -> OverlayFleet<'static> {
    let mut fleet = OverlayFleet::builder(seed).build();
    fleet.add_subnet(1, 3);
    fleet.run_until(30 * SEC, |f| f.all_present()).expect("converges");
    fleet
}

#[test]
fn a_panicking_driver_fails_the_run_naming_its_host() {
    let mut fleet = converged(11);
    let victim = fleet.hosts()[1].clone();
    fleet.entry(&victim).fault.inject(fault::PANIC);
    let error = fleet.run_for(5 * SEC).expect_err("the panic fails the run");
    match &error {
        RunError::HostFailed { host, reason, .. } => {
            assert_eq!(host, &victim);
            assert!(reason.contains("panicked: injected fault"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains(&victim), "{error}");
    assert!(!fleet.is_up(&victim));
    assert_eq!(
        fleet.command(&victim, fleetmesh::overlay::NodeCommand::Leave),
        Err(CommandError::Stopped)
    );
    // Reported once: the others run on.
    fleet.run_for(SEC).unwrap();
    assert!(fleet.is_up(&fleet.hosts()[0]));
}

#[test]
fn a_master_driver_that_fails_fails_the_run() {
    let mut fleet = converged(12);
    fleet.master_fault.inject(fault::CLOSE);
    let error = fleet.run_until(5 * SEC, |_| false).expect_err("the failure ends the run");
    assert!(
        matches!(&error, RunError::HostFailed { host, reason, .. }
            if host == super::MASTER_HOST && reason.contains("transport")),
        "{error}"
    );
    assert!(fleet.master().is_none());
}

#[test]
fn a_full_command_queue_is_not_a_stopped_driver() {
    let mut fleet = OverlayFleet::builder(13).build();
    fleet.run_for(Duration::from_millis(10)).unwrap();
    // Without a step the driver takes nothing: the queue fills.
    let sent = (0..1000).take_while(|_| fleet.master_command(MasterCommand::Wake).is_ok()).count();
    assert!(sent > 0 && sent < 1000, "{sent}");
    assert_eq!(fleet.master_command(MasterCommand::Wake), Err(CommandError::QueueFull));
    fleet.run_for(Duration::from_millis(10)).unwrap();
    assert_eq!(fleet.master_command(MasterCommand::Wake), Ok(()));
    let master = fleet.master_host();
    fleet.crash(master);
    assert_eq!(fleet.master_command(MasterCommand::Wake), Err(CommandError::Stopped));
}
