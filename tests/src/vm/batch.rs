//! Many scenarios in one boot: each runs in a shell of its own, with disks
//! of its own and a scratch directory of its own, and reports its own exit
//! status, so scenarios that do not interfere share the cost of a boot.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Vm, VmError};

/// One scenario: a shell script run with `/bin/sh -e`, and how many blank
/// disks it needs (its `$KLD_VM_DISKS`).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A unique name (letters, digits, `_` and `-`).
    pub name: String,
    /// How many disks it gets.
    pub disks: usize,
    /// The script.
    pub script: String,
}

impl Scenario {
    /// Reads a scenario file. Its name is the file's stem; a line
    /// `# disks: N` among its leading comments asks for disks.
    pub fn from_file(path: &Path) -> Result<Scenario, VmError> {
        let script = std::fs::read_to_string(path).map_err(|source| VmError::Script {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let disks = script
            .lines()
            .take_while(|l| l.starts_with('#'))
            .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("disks:"))
            .map(|n| {
                n.trim()
                    .parse()
                    .map_err(|_| VmError::Setup(format!("{}: bad `# disks:` line", path.display())))
            })
            .transpose()?
            .unwrap_or(0);
        Ok(Scenario {
            name,
            disks,
            script,
        })
    }
}

/// Scenarios to run together in one VM, and the shell libraries they
/// source (from `/kld/run/lib/`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    scenarios: Vec<Scenario>,
    libs: Vec<(String, Vec<u8>)>,
}

/// How one scenario of a batch ended.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// Its exit status.
    pub exit_code: i32,
    /// What it printed.
    pub output: String,
}

/// The outcome of a batch: each scenario's result, by name.
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// Scenario results by name; a scenario missing here never finished.
    pub results: BTreeMap<String, ScenarioResult>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a scenario.
    pub fn add(&mut self, scenario: Scenario) {
        self.scenarios.push(scenario);
    }

    /// Adds every `*.sh` file of `dir`, in name order, and its libraries
    /// (see [`add_libs`](Self::add_libs)).
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), VmError> {
        self.add_libs(dir)?;
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| VmError::Script {
                path: dir.to_owned(),
                source,
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sh"))
            .collect();
        paths.sort();
        for path in paths {
            self.add(Scenario::from_file(&path)?);
        }
        Ok(())
    }

    /// Makes the files of `dir/lib/` available to the scenarios as
    /// `/kld/run/lib/<name>`.
    pub fn add_libs(&mut self, dir: &Path) -> Result<(), VmError> {
        let lib = dir.join("lib");
        for entry in std::fs::read_dir(&lib).into_iter().flatten().flatten() {
            let path = entry.path();
            let bytes = std::fs::read(&path).map_err(|source| VmError::Script {
                path: path.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            self.libs.push((format!("/kld/run/lib/{name}"), bytes));
        }
        Ok(())
    }

    /// The names of the scenarios, in order.
    pub fn names(&self) -> Vec<&str> {
        self.scenarios.iter().map(|s| s.name.as_str()).collect()
    }

    /// Boots one VM (with `vm`'s memory, disk size and time limit, and as
    /// many disks as the scenarios need together) and runs every scenario.
    pub fn run(&self, vm: Vm, sink: &mut dyn std::io::Write) -> Result<BatchResult, VmError> {
        for s in &self.scenarios {
            let ok = !s.name.is_empty()
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(VmError::Setup(format!("bad scenario name {:?}", s.name)));
            }
        }
        let tag = format!("KLD-SCENARIO-{}", std::process::id());
        let mut driver = String::new();
        let mut files = self.libs.clone();
        let mut next_disk = 0usize;
        for s in &self.scenarios {
            let disks: Vec<String> = (next_disk..next_disk + s.disks)
                .map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char))
                .collect();
            next_disk += s.disks;
            let file = format!("/kld/run/scenarios/{}.sh", s.name);
            driver.push_str(&format!(
                "echo '{tag}-BEGIN {name}'\n\
                 mkdir -p /tmp/scenario/{name}\n\
                 (cd /tmp/scenario/{name} && KLD_VM_DISKS='{disks}' /bin/sh -e {file})\n\
                 echo \"{tag}-END {name} $?\"\n",
                name = s.name,
                disks = disks.join(" "),
            ));
            files.push((file, s.script.clone().into_bytes()));
        }
        let run = vm.disks(next_disk).run_with_files(&driver, &files, sink)?;
        Ok(BatchResult {
            results: parse_results(&run.output_str(), &tag),
        })
    }
}

impl BatchResult {
    /// Panics with the scenario's output unless it exited 0 (for tests).
    pub fn assert_passed(&self, name: &str) {
        match self.results.get(name) {
            Some(r) if r.exit_code == 0 => {}
            Some(r) => panic!(
                "scenario {name} exited {}; its output:\n{}",
                r.exit_code, r.output
            ),
            None => panic!("scenario {name} did not finish (see the VM output above)"),
        }
    }
}

fn parse_results(output: &str, tag: &str) -> BTreeMap<String, ScenarioResult> {
    let begin = format!("{tag}-BEGIN ");
    let end = format!("{tag}-END ");
    let mut results = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix(&begin) {
            current = Some((name.to_owned(), String::new()));
        } else if let Some(rest) = line.strip_prefix(&end) {
            let mut parts = rest.rsplitn(2, ' ');
            let code = parts.next().and_then(|c| c.parse().ok());
            if let (Some((name, output)), Some(exit_code)) = (current.take(), code) {
                results.insert(name, ScenarioResult { exit_code, output });
            }
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_split_per_scenario() {
        let out = "boot noise\nT-BEGIN a\nhello\nT-END a 0\nT-BEGIN b\nboom\nT-END b 3\nT-BEGIN c\nhalf\n";
        let r = parse_results(out, "T");
        assert_eq!(r["a"].exit_code, 0);
        assert_eq!(r["a"].output, "hello\n");
        assert_eq!(r["b"].exit_code, 3);
        assert!(!r.contains_key("c"), "an unfinished scenario has no result");
    }

    #[test]
    fn disks_line_is_read_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.sh");
        std::fs::write(&path, "#!/bin/sh\n# disks: 2\nzpool list\n").unwrap();
        let s = Scenario::from_file(&path).unwrap();
        assert_eq!((s.name.as_str(), s.disks), ("pool", 2));
        std::fs::write(&path, "# disks: many\n").unwrap();
        assert!(Scenario::from_file(&path).is_err());
    }
}
