//! Metrics defined by modules: process-wide, named `wasmcustom.<name>` as Envoy names them.

use pwx_abi::MetricType;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Envoy's namespace for module-defined stats.
pub const CUSTOM_NAMESPACE: &str = "wasmcustom";

/// Envoy's default histogram bucket bounds.
pub const HISTOGRAM_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// One metric's value.
pub struct Metric {
    /// Kind.
    pub kind: MetricType,
    /// Counter or gauge value.
    value: AtomicI64,
    /// Histogram: samples per bucket (one more for +Inf), sample count and sum.
    buckets: [AtomicU64; HISTOGRAM_BUCKETS.len() + 1],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Metric {
    fn new(kind: MetricType) -> Self {
        Metric {
            kind,
            value: AtomicI64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Counter or gauge value.
    pub fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Adds to a counter or gauge.
    pub fn add(&self, delta: i64) {
        self.value.fetch_add(delta, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(&self, value: i64) {
        self.value.store(value, Ordering::Relaxed);
    }

    /// Records a histogram sample.
    pub fn record(&self, sample: u64) {
        let bucket = HISTOGRAM_BUCKETS
            .iter()
            .position(|bound| sample as f64 <= *bound)
            .unwrap_or(HISTOGRAM_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(sample, Ordering::Relaxed);
    }

    /// Histogram sample count and sum.
    pub fn histogram_totals(&self) -> (u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.sum.load(Ordering::Relaxed),
        )
    }

    /// Histogram samples per bucket (last one is +Inf).
    pub fn histogram_buckets(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// All module-defined metrics of the process, by full name.
#[derive(Default)]
pub struct Metrics {
    by_name: Mutex<BTreeMap<String, Arc<Metric>>>,
}

/// A name is already defined with another kind.
#[derive(Debug, PartialEq, Eq)]
pub struct KindConflict;

impl Metrics {
    /// Defines (or finds) `wasmcustom.<name>`.
    pub fn define(&self, name: &str, kind: MetricType) -> Result<Arc<Metric>, KindConflict> {
        let full = format!("{CUSTOM_NAMESPACE}.{name}");
        let mut by_name = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        let metric = by_name
            .entry(full)
            .or_insert_with(|| Arc::new(Metric::new(kind)));
        if metric.kind != kind {
            return Err(KindConflict);
        }
        Ok(metric.clone())
    }

    /// Every metric with its full name, sorted.
    pub fn snapshot(&self) -> Vec<(String, Arc<Metric>)> {
        let by_name = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        by_name
            .iter()
            // A metric defined with an empty name works for the module but, as in Envoy, is
            // not exported (a stat name cannot end with the namespace's dot).
            .filter(|(name, _)| !name.ends_with('.'))
            .map(|(name, metric)| (name.clone(), metric.clone()))
            .collect()
    }

    /// The metric with this full name (`wasmcustom.<name>`).
    pub fn get(&self, full_name: &str) -> Option<Arc<Metric>> {
        self.by_name
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(full_name)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn define_is_idempotent_per_name() {
        let metrics = Metrics::default();
        let a = metrics.define("requests", MetricType::Counter).unwrap();
        let b = metrics.define("requests", MetricType::Counter).unwrap();
        a.add(2);
        assert_eq!(b.value(), 2);
        assert!(metrics.define("requests", MetricType::Gauge).is_err());
        let h = metrics.define("latency", MetricType::Histogram).unwrap();
        h.record(3);
        h.record(7000);
        assert_eq!(h.histogram_totals(), (2, 7003));
        assert_eq!(metrics.snapshot()[0].0, "wasmcustom.latency");
    }
}
