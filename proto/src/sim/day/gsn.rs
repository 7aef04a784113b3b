//! The day's GSN directory (issue 16): how many GSNs the master appointed and published in
//! the DHT, and how well the LSNs' choices (`node/gsn_survey.rs`) match the modelled network:
//! the round trip each LSN measured to the GSN it chose, next to the modelled round trip to
//! the nearest appointed GSN.

use std::time::Duration;

use serde::Serialize;

use super::report::Quantiles;
use crate::{overlay::NodeState, sim::Simulation};

/// The GSN directory at the end of the day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GsnReport {
    /// GSNs the master had appointed.
    pub appointed: usize,
    /// Tickets the GSNs published in the DHT over the day (renewals included).
    pub tickets_published: u64,
    /// LSNs at the end.
    pub lsns: usize,
    /// Of those, with a GSN chosen (and told the master).
    pub lsns_with_choice: usize,
    /// Of those, the fraction whose choice is (within 1 ms) as near as the nearest appointed
    /// GSN by the modelled latencies.
    pub chose_nearest: f64,
    /// The round trips the LSNs measured to the GSNs they chose (ms).
    pub chosen_rtt_ms: Quantiles,
    /// The modelled round trips from the same LSNs to their nearest appointed GSN (ms).
    pub nearest_rtt_ms: Quantiles,
    /// Directory reads by LSNs over the day.
    pub surveys: u64,
    /// Probes sent to GSNs over the day.
    pub probes: u64,
}

pub(super) fn report(sim: &Simulation) -> GsnReport {
    let gsns = sim.master().gsns();
    let slot_of = |id: &crate::NodeId| sim.slot_of_id(id);
    let gsn_slots: Vec<usize> = gsns.iter().filter_map(&slot_of).collect();
    // The modelled round trip between two slots' hosts (LAN within a subnet).
    let rtt = |a: usize, b: usize| -> Duration {
        if a == b {
            return Duration::ZERO;
        }
        let (sa, sb) = (sim.slots[a].subnet(), sim.slots[b].subnet());
        if sa == sb {
            return 2 * sim.net.lan;
        }
        let offset = |s: u16| sim.info.get(usize::from(s)).map_or(0, |i| i.wan_offset_us);
        2 * sim.net.one_way(offset(sa) + offset(sb))
    };
    let mut r = GsnReport { appointed: gsns.len(), ..GsnReport::default() };
    let (mut chosen, mut nearest, mut near) = (Vec::new(), Vec::new(), 0usize);
    for (i, slot) in sim.slots.iter().enumerate() {
        let Some(node) = slot.node.as_ref() else { continue };
        let stats = node.survey_stats();
        r.tickets_published += stats.published;
        r.surveys += stats.surveys;
        r.probes += stats.probes;
        if node.state() != NodeState::IsLsn {
            continue;
        }
        r.lsns += 1;
        let Some((gsn, measured)) = node.gsn_choice() else { continue };
        r.lsns_with_choice += 1;
        let Some(best) = gsn_slots.iter().map(|&g| rtt(i, g)).min() else { continue };
        let mine = slot_of(&gsn).map(|g| rtt(i, g));
        if mine.is_some_and(|m| m <= best + Duration::from_millis(1)) {
            near += 1;
        }
        chosen.push(measured);
        nearest.push(best);
    }
    if r.lsns_with_choice > 0 {
        r.chose_nearest = near as f64 / r.lsns_with_choice as f64;
    }
    r.chosen_rtt_ms = Quantiles::of(&chosen);
    r.nearest_rtt_ms = Quantiles::of(&nearest);
    r
}
