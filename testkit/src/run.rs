//! Running a turmoil simulation for a span of simulated time.

/// Steps `sim` until `d` more of simulated time has passed.
pub(crate) fn run_for(sim: &mut turmoil::Sim<'_>, d: std::time::Duration) -> turmoil::Result {
    let until = sim.elapsed() + d;
    while sim.elapsed() < until {
        sim.step()?;
    }
    Ok(())
}
