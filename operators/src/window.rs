//! Event-time windows over differential collections, maintained incrementally: an insertion,
//! a retraction or a revision of a record changes exactly the windows it falls in.
//!
//! Records are `(key, (event time, value))`. [`window_aggregate`] groups them into tumbling,
//! hopping or calendar-month windows per key; [`session_aggregate`] into sessions per key
//! (records closer than `gap` share a session, so a record that bridges two sessions merges
//! them and a retraction that leaves a gap splits one). Each window's values are aggregated by
//! any function of the group (see [`crate::aggregate`]). Whether a window is complete is
//! [`crate::lateness::close_windows`]'s business.

use std::hash::Hash;

use citeflow_engine::timestamps::{add_months, month_index, EventTime};
use differential_dataflow::hashable::Hashable;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::{ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use crate::aggregate::Group;
use crate::reduce::ReduceTotal;

/// A window of event time: from `start` (included) to `end` (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First instant in the window.
    pub start: EventTime,
    /// First instant after the window.
    pub end: EventTime,
}

/// How event times are assigned to windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Windows {
    /// Consecutive windows of `size` milliseconds, aligned to `offset` after the Unix epoch.
    Tumbling {
        /// Length of a window.
        size: EventTime,
        /// Where windows start, modulo `size`.
        offset: EventTime,
    },
    /// Windows of `size` milliseconds starting every `slide` milliseconds (aligned to the Unix
    /// epoch): each time falls in `size / slide` of them (rounded up).
    Hopping {
        /// Length of a window.
        size: EventTime,
        /// Distance between window starts.
        slide: EventTime,
    },
    /// Consecutive windows of `months` calendar months (UTC), aligned to January 1970.
    CalendarMonths {
        /// Months per window.
        months: i64,
    },
}

impl Windows {
    /// The windows that contain `time`, in increasing order of start. Sizes are expected to be
    /// positive (configuration checks them).
    pub fn assign(&self, time: EventTime) -> Vec<Window> {
        match *self {
            Windows::Tumbling { size, offset } => {
                let start = time - (time - offset).rem_euclid(size);
                vec![Window { start, end: start + size }]
            }
            Windows::Hopping { size, slide } => {
                let last = time - time.rem_euclid(slide);
                let mut windows: Vec<Window> = std::iter::successors(Some(last), |start| Some(start - slide))
                    .take_while(|start| start + size > time)
                    .map(|start| Window { start, end: start + size })
                    .collect();
                windows.reverse();
                windows
            }
            Windows::CalendarMonths { months } => {
                let index = month_index(time).div_euclid(months) * months;
                let start = add_months(0, index);
                vec![Window { start, end: add_months(start, months) }]
            }
        }
    }
}

/// Per key and window, the aggregate of the values of the records in the window.
pub fn window_aggregate<'scope, T, K, V, A, F>(
    records: VecCollection<'scope, T, (K, (EventTime, V))>,
    windows: Windows,
    aggregate: F,
) -> VecCollection<'scope, T, ((K, Window), A)>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
    K: ExchangeData + Hash + Hashable,
    V: ExchangeData,
    A: ExchangeData,
    F: Fn(&Group<'_, V>) -> A + 'static,
{
    records
        .flat_map(move |(key, (time, value))| windows.assign(time).into_iter().map(move |window| ((key.clone(), window), value.clone())))
        .reduce_total_named("Window aggregate", move |_window, values, output| output.push((aggregate(values), 1)))
}

/// Splits times (sorted) into sessions: a time at most `gap` after the end of the session so
/// far joins it (as Flink merges session windows that touch), and a session ends `gap` after
/// its last time. Returns, per session, its window and how many of the times it took.
pub fn sessions(times: impl IntoIterator<Item = EventTime>, gap: EventTime) -> Vec<(Window, usize)> {
    let mut sessions: Vec<(Window, usize)> = Vec::new();
    for time in times {
        match sessions.last_mut() {
            Some((window, count)) if time <= window.end => {
                window.end = window.end.max(time + gap);
                *count += 1;
            }
            _ => sessions.push((Window { start: time, end: time + gap }, 1)),
        }
    }
    sessions
}

/// Per key and session (records whose event times are within `gap` of each other), the
/// aggregate of the session's values. Recomputed per key when the key's records change.
pub fn session_aggregate<'scope, T, K, V, A, F>(
    records: VecCollection<'scope, T, (K, (EventTime, V))>,
    gap: EventTime,
    aggregate: F,
) -> VecCollection<'scope, T, ((K, Window), A)>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
    K: ExchangeData + Hash + Hashable,
    V: ExchangeData,
    A: ExchangeData,
    F: Fn(&Group<'_, V>) -> A + 'static,
{
    records
        .reduce_total_named("Session aggregate", move |_key, records: &[(&(EventTime, V), isize)], output| {
            let present: Vec<(&(EventTime, V), isize)> = records.iter().filter(|(_, count)| *count > 0).copied().collect();
            let mut rest = &present[..];
            for (window, taken) in sessions(present.iter().map(|((time, _), _)| *time), gap) {
                let (members, after) = rest.split_at(taken);
                rest = after;
                let values: Vec<(&V, isize)> = members.iter().map(|((_, value), count)| (value, *count)).collect();
                output.push(((window, aggregate(&values)), 1));
            }
        })
        .map(|(key, (window, aggregate))| ((key, window), aggregate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{count, sum_by};
    use citeflow_engine::timestamps::parse_rfc3339;
    use differential_dataflow::input::Input;
    use std::sync::{Arc, Mutex};

    fn w(start: EventTime, end: EventTime) -> Window {
        Window { start, end }
    }

    #[test]
    fn tumbling_windows_are_aligned_and_half_open() {
        let windows = Windows::Tumbling { size: 10, offset: 3 };
        assert_eq!(windows.assign(3), vec![w(3, 13)]);
        assert_eq!(windows.assign(12), vec![w(3, 13)]);
        assert_eq!(windows.assign(13), vec![w(13, 23)]);
        assert_eq!(windows.assign(-1), vec![w(-7, 3)]);
    }

    /// Beam `SlidingWindows.of(10).every(5)`: every time is in two windows.
    #[test]
    fn hopping_windows_overlap() {
        let windows = Windows::Hopping { size: 10, slide: 5 };
        assert_eq!(windows.assign(7), vec![w(0, 10), w(5, 15)]);
        assert_eq!(windows.assign(10), vec![w(5, 15), w(10, 20)]);
        let sparse = Windows::Hopping { size: 5, slide: 10 };
        assert_eq!(sparse.assign(7), vec![], "a gap between windows holds no window");
    }

    #[test]
    fn calendar_months_follow_the_calendar() {
        let date = |text: &str| parse_rfc3339(text).unwrap();
        let monthly = Windows::CalendarMonths { months: 1 };
        assert_eq!(monthly.assign(date("2024-02-29T23:00:00Z")), vec![w(date("2024-02-01"), date("2024-03-01"))]);
        let quarterly = Windows::CalendarMonths { months: 3 };
        assert_eq!(quarterly.assign(date("2024-05-10")), vec![w(date("2024-04-01"), date("2024-07-01"))]);
        assert_eq!(quarterly.assign(date("1969-12-31")), vec![w(date("1969-10-01"), date("1970-01-01"))]);
    }

    /// Flink session windows: windows that touch merge; a bridging element merges two sessions.
    #[test]
    fn sessions_merge_when_bridged() {
        assert_eq!(sessions([1, 3, 12], 5), vec![(w(1, 8), 2), (w(12, 17), 1)]);
        assert_eq!(sessions([1, 3, 7, 12], 5), vec![(w(1, 17), 4)], "7 bridges the two sessions");
        assert_eq!(sessions([1, 3, 8, 20], 5), vec![(w(1, 13), 3), (w(20, 25), 1)], "touching windows merge");
    }

    type Record = (u8, (EventTime, i64));
    type Aggregated = ((u8, Window), (i64, i64));

    /// Runs `operator` over rounds of updates and returns the consolidated output after each round.
    fn rounds<F>(rounds: Vec<Vec<(Record, isize)>>, operator: F) -> Vec<Vec<Aggregated>>
    where
        F: Fn(VecCollection<'_, u64, Record>) -> VecCollection<'_, u64, Aggregated> + Send + Sync + 'static,
    {
        let sink = Arc::new(Mutex::new(Vec::new()));
        timely::execute_directly(move |worker| {
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, records) = scope.new_collection::<Record, isize>();
                let sink = sink.clone();
                let probe = operator(records).inspect(move |update| sink.lock().unwrap().push(*update)).probe().0;
                (input, probe)
            });
            let mut snapshots = Vec::new();
            for (round, updates) in rounds.iter().enumerate() {
                for (record, diff) in updates {
                    input.update(*record, *diff);
                }
                input.advance_to(round as u64 + 1);
                input.flush();
                worker.step_while(|| probe.less_than(input.time()));
                let mut all: Vec<(Aggregated, isize)> = sink.lock().unwrap().iter().map(|(data, _, diff)| (*data, *diff)).collect();
                differential_dataflow::consolidation::consolidate(&mut all);
                assert!(all.iter().all(|(_, diff)| *diff == 1), "each window appears once: {all:?}");
                snapshots.push(all.into_iter().map(|(data, _)| data).collect());
            }
            snapshots
        })
    }

    fn count_and_sum(values: &Group<'_, i64>) -> (i64, i64) {
        (count(values), sum_by(|v: &i64| *v)(values))
    }

    #[test]
    fn tumbling_aggregates_follow_insertions_and_retractions() {
        let result = rounds(vec![vec![((1, (3, 10)), 1), ((1, (7, 5)), 1), ((2, (12, 1)), 1)], vec![((1, (7, 5)), -1)]], |records| {
            window_aggregate(records, Windows::Tumbling { size: 10, offset: 0 }, count_and_sum)
        });
        assert_eq!(result[0], vec![((1, w(0, 10)), (2, 15)), ((2, w(10, 20)), (1, 1))]);
        assert_eq!(result[1], vec![((1, w(0, 10)), (1, 10)), ((2, w(10, 20)), (1, 1))]);
    }

    /// Flink session windows with retractions: a late bridging element merges two sessions,
    /// and retracting it splits them again.
    #[test]
    fn session_aggregates_merge_and_split() {
        let result = rounds(vec![vec![((1, (0, 1)), 1), ((1, (12, 2)), 1)], vec![((1, (6, 4)), 1)], vec![((1, (6, 4)), -1)]], |records| {
            session_aggregate(records, 6, count_and_sum)
        });
        assert_eq!(result[0], vec![((1, w(0, 6)), (1, 1)), ((1, w(12, 18)), (1, 2))]);
        assert_eq!(result[1], vec![((1, w(0, 18)), (3, 7))]);
        assert_eq!(result[2], result[0]);
    }
}
