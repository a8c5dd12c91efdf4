//! Connection traffic (`GET …/connections/{id}/utilization`): what the admin set for a
//! connection, served in buckets as the spec's example shows them.

use std::collections::HashMap;

use serde_json::{Value, json};

/// Buckets one answer may hold; a longer window is refused (our assumption: the spec sets no
/// limit, but a real service bounds its answers).
pub const MAX_BUCKETS: i64 = 1500;

/// Mbps a connection carries in each direction, as the admin set it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Level {
    pub rx_mbps: f64,
    pub tx_mbps: f64,
}

/// The query: `start`, `end` (unix seconds) and `resolution`, all required by the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    /// Seconds per bucket.
    pub step: i64,
    /// Minute buckets carry no min/max fields (spec).
    pub with_extremes: bool,
}

/// Reads the query; `Err` is a 400 message naming the parameter.
pub fn window(query: &HashMap<String, String>) -> Result<Window, String> {
    let seconds = |name: &str| -> Result<i64, String> {
        let text = query
            .get(name)
            .ok_or_else(|| format!("'{name}' is required (unix seconds)"))?;
        text.trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| format!("'{name}' must be unix seconds, not {text:?}"))
    };
    let start = seconds("start")?;
    let end = seconds("end")?;
    let resolution = query
        .get("resolution")
        .ok_or("'resolution' is required: day, hour or minute")?;
    let (step, with_extremes) = match resolution.as_str() {
        "minute" => (60, false),
        "hour" => (3_600, true),
        "day" => (86_400, true),
        other => {
            return Err(format!(
                "'resolution' must be day, hour or minute, not {other:?}"
            ));
        }
    };
    if end < start {
        return Err("'end' is before 'start'".to_owned());
    }
    if (end - start) / step > MAX_BUCKETS {
        return Err(format!(
            "the window holds more than {MAX_BUCKETS} {resolution} buckets; ask for a coarser \
             resolution"
        ));
    }
    Ok(Window {
        start,
        end,
        step,
        with_extremes,
    })
}

/// The answer for connection `id`: one bucket per step of the window that the connection spent
/// ACTIVE in (`active_since`, unix seconds; `None` when it is not ACTIVE now), the bucket under
/// way included (our assumption: the spec does not say whether it is reported).
pub fn answer(id: &str, window: Window, active_since: Option<i64>, level: Level) -> Value {
    let results: Vec<Value> = match active_since {
        None => Vec::new(),
        Some(since) => {
            let first = window.start.max(since);
            let first = first - first % window.step;
            (0..)
                .map(|i| first + i * window.step)
                .take_while(|t| *t < window.end)
                .map(|t| bucket(t, level, window.with_extremes))
                .collect()
        }
    };
    json!({ "connectionId": id, "results": results, "unit": "Mbps" })
}

fn bucket(time: i64, level: Level, with_extremes: bool) -> Value {
    let mut bucket = json!({
        "time": time,
        "rxAverage": level.rx_mbps,
        "txAverage": level.tx_mbps,
    });
    if with_extremes {
        bucket["rxMax"] = json!(level.rx_mbps);
        bucket["rxMin"] = json!(level.rx_mbps);
        bucket["txMax"] = json!(level.tx_mbps);
        bucket["txMin"] = json!(level.tx_mbps);
    }
    bucket
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_parameter_is_required_and_checked() {
        let full = [("start", "600"), ("end", "1200"), ("resolution", "minute")];
        assert!(window(&query(&full)).is_ok());
        for missing in ["start", "end", "resolution"] {
            let partial: Vec<_> = full
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = window(&query(&partial)).unwrap_err();
            assert!(err.contains(missing), "{err}");
        }
        let bad = window(&query(&[
            ("start", "x"),
            ("end", "1"),
            ("resolution", "minute"),
        ]));
        assert!(bad.unwrap_err().contains("unix seconds"));
        let bad = window(&query(&[
            ("start", "9"),
            ("end", "1"),
            ("resolution", "minute"),
        ]));
        assert!(bad.unwrap_err().contains("before"));
        let bad = window(&query(&[
            ("start", "0"),
            ("end", "60"),
            ("resolution", "week"),
        ]));
        assert!(bad.unwrap_err().contains("day, hour or minute"));
        let long = window(&query(&[
            ("start", "0"),
            ("end", "9000000"),
            ("resolution", "minute"),
        ]));
        assert!(long.unwrap_err().contains("coarser"));
    }

    #[test]
    fn buckets_since_the_connection_became_active() {
        let w = window(&query(&[
            ("start", "0"),
            ("end", "600"),
            ("resolution", "minute"),
        ]))
        .unwrap();
        let level = Level {
            rx_mbps: 12.5,
            tx_mbps: 3.0,
        };
        let answer = answer("c1", w, Some(130), level);
        let times: Vec<i64> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["time"].as_i64().unwrap())
            .collect();
        assert_eq!(times, [120, 180, 240, 300, 360, 420, 480, 540]);
        assert_eq!(answer["results"][0]["rxAverage"], 12.5);
        assert!(
            answer["results"][0].get("rxMax").is_none(),
            "minute buckets have no extremes"
        );
        assert_eq!(answer["unit"], "Mbps");
        let idle = super::answer("c1", w, None, level);
        assert_eq!(idle["results"], json!([]));
    }

    #[test]
    fn hour_buckets_carry_extremes() {
        let w = window(&query(&[
            ("start", "0"),
            ("end", "7200"),
            ("resolution", "hour"),
        ]))
        .unwrap();
        let answer = answer("c1", w, Some(0), Level::default());
        assert_eq!(answer["results"].as_array().unwrap().len(), 2);
        assert_eq!(answer["results"][1]["txMax"], 0.0);
    }
}
