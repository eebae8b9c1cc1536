//! What a results folder records besides the numbers: the machine, the software versions, and
//! how long each step took (measured, wall clock).
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The machine a run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to the process (`nproc`).
    pub nproc: usize,
    /// `model name` of the first CPU in /proc/cpuinfo, when readable.
    pub cpu_model: Option<String>,
    /// libtorch intra-op threads used.
    pub torch_threads: Option<i32>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    pub os: String,
    pub arch: String,
    /// Hostname is deliberately not recorded.
    pub memory_total_kib: Option<u64>,
}

impl Machine {
    pub fn detect(device: &str, torch_threads: Option<i32>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model(&cpuinfo),
            torch_threads,
            device: device.to_string(),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            memory_total_kib: mem_total(&meminfo),
        }
    }
}

/// `model name` of the first processor in a /proc/cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Versions of the software that produced a run: the same record as a checkpoint's.
pub use ood_nn::checkpoint::Versions;

/// One timed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub step: String,
    pub seconds: f64,
}

/// Wall-clock timings of named steps, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub steps: Vec<Timing>,
}

impl Timings {
    /// Runs `f`, records its duration under `step`.
    pub fn time<T>(&mut self, step: &str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.record(step, t0.elapsed().as_secs_f64());
        out
    }

    pub fn record(&mut self, step: &str, seconds: f64) {
        self.steps.push(Timing {
            step: step.to_string(),
            seconds,
        });
    }

    pub fn total(&self) -> f64 {
        self.steps.iter().map(|t| t.seconds).sum()
    }

    /// Markdown table of the steps and the total.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| step | seconds |\n| --- | ---: |\n");
        for t in &self.steps {
            s.push_str(&format!("| {} | {:.1} |\n", t.step, t.seconds));
        }
        s.push_str(&format!("| **total** | {:.1} |\n", self.total()));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpu = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags : x\n\nprocessor\t: 1\nmodel name\t: Other\n";
        assert_eq!(
            cpu_model(cpu).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(cpu_model("processor: 0\n"), None);
        assert_eq!(
            mem_total("MemTotal:       16333884 kB\nMemFree: 1 kB\n"),
            Some(16333884)
        );
    }

    #[test]
    fn timings_sum_and_render() {
        let mut t = Timings::default();
        t.record("a", 1.24);
        t.record("b", 2.0);
        assert!((t.total() - 3.24).abs() < 1e-12);
        assert_eq!(
            t.markdown(),
            "| step | seconds |\n| --- | ---: |\n| a | 1.2 |\n| b | 2.0 |\n| **total** | 3.2 |\n"
        );
        let v = t.time("c", || 7);
        assert_eq!((v, t.steps.len(), t.steps[2].step.as_str()), (7, 3, "c"));
    }
}
