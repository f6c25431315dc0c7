//! The generator's side of the kernel's reply tally
//! (`stormboot_common::tally`): opens the maps `stormboot-lab xdp-pass
//! --tally DIR` pinned, announces a run, and reads what was counted.

use std::path::Path;

use anyhow::Context;
use aya::maps::{Array, Map, MapData, PerCpuArray, PerCpuValues};
use stormboot_common::tally::{slot, Run};

pub struct Tally {
    run: Array<MapData, Run>,
    counts: PerCpuArray<MapData, u64>,
}

/// Everything counted so far, summed over the CPUs, by `slot`.
pub type Totals = [u64; slot::COUNT as usize];

impl Tally {
    pub fn open(dir: &Path) -> anyhow::Result<Tally> {
        let pinned = |file: &str| {
            let path = dir.join(file);
            MapData::from_pin(&path).with_context(|| {
                format!(
                    "opening {} (is `stormboot-lab xdp-pass --tally {}` running on the interface?)",
                    path.display(),
                    dir.display()
                )
            })
        };
        Ok(Tally {
            run: Array::try_from(Map::Array(pinned("run")?))?,
            counts: PerCpuArray::try_from(Map::PerCpuArray(pinned("counts")?))?,
        })
    }

    /// Zeroes the counts, then has the program count `run`.
    pub fn start(&mut self, run: Run) -> anyhow::Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        for s in 0..slot::COUNT {
            let zeros = PerCpuValues::try_from(vec![0u64; cpus])?;
            self.counts.set(s, zeros, 0)?;
        }
        self.run.set(0, run, 0)?;
        Ok(())
    }

    /// Stops counting: the run's later replies go up to the stack.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.run.set(0, Run::default(), 0)?;
        Ok(())
    }

    pub fn totals(&self) -> anyhow::Result<Totals> {
        let mut out = Totals::default();
        for (s, total) in out.iter_mut().enumerate() {
            *total = self.counts.get(&(s as u32), 0)?.iter().sum();
        }
        Ok(out)
    }
}
