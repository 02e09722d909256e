//! Host side of the QEMU firmware examples (`firmware-examples/qemu-m4f`, `qemu-m0`): builds a
//! firmware for a model and stimulus, boots it in `qemu-system-arm`, decodes its defmt stream with
//! `defmt-print`, and returns what it streamed (drive, v, i, states per sample), its exit code,
//! the instructions per step and the stack high-water mark.
//!
//! Instruction counts come from a small TCG plugin (`firmware-examples/qemu-plugin/`, built here
//! with the C compiler) counting the instructions executed between the firmware's two marker
//! functions around each step: exact and identical across runs. Without a C compiler or the
//! plugin's source (or with `ODEFLASH_QEMU_COUNT=icount`) it falls back to `-icount shift=0` and
//! the firmware's SysTick readings (within a few dozen instructions per step, also deterministic).
//!
//! The firmware folders are found under [`firmware_root`]: `ODEFLASH_FIRMWARE_DIR`, else the
//! `firmware-examples/` of the checkout this crate was built from; [`BuildOptions::firmware_dir`]
//! overrides both.
//!
//! ```no_run
//! use odeflash_device::qemu::{Board, BuildOptions, ModelSource, RunOptions};
//! # fn main() -> Result<(), odeflash_device::qemu::Error> {
//! odeflash_device::qemu::require_tools(Board::M4f)?;
//! let fw = BuildOptions::new(Board::M4f, ModelSource::Default).samples(100).build()?;
//! let out = fw.run(&RunOptions::default())?;
//! assert_eq!(out.exit_code, 0);
//! println!("{} samples, {:?} instructions per step", out.samples.len(), out.insns_per_step());
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// What went wrong, with what to do about it.
#[derive(Debug)]
pub enum Error {
    /// A tool is missing; `install` says how to get it.
    MissingTool {
        /// The program.
        tool: &'static str,
        /// How to install it.
        install: String,
    },
    /// A firmware folder is not where it was looked for.
    MissingFirmware {
        /// The folder.
        dir: PathBuf,
    },
    /// The firmware did not build.
    Build {
        /// The command.
        command: String,
        /// Its output (tail).
        output: String,
    },
    /// QEMU or defmt-print failed to run.
    Run {
        /// What failed.
        what: String,
        /// Details.
        output: String,
    },
    /// A file operation failed.
    Io {
        /// On what.
        context: String,
        /// The error.
        error: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingTool { tool, install } => {
                write!(f, "`{tool}` is not available: {install}")
            }
            Error::MissingFirmware { dir } => write!(
                f,
                "no firmware example at {}: pass --firmware-dir (the `firmware-examples/` folder \
                 of an odeflash checkout) or set ODEFLASH_FIRMWARE_DIR",
                dir.display()
            ),
            Error::Build { command, output } => {
                write!(f, "firmware build failed: `{command}`\n{output}")
            }
            Error::Run { what, output } => write!(f, "{what}\n{output}"),
            Error::Io { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

impl std::error::Error for Error {}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |error| Error::Io { context, error }
}

/// The QEMU machines the examples run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Board {
    /// Cortex-M4F with FPU, QEMU `mps2-an386`, `firmware-examples/qemu-m4f`.
    M4f,
    /// Cortex-M0 without FPU, QEMU `microbit`, `firmware-examples/qemu-m0`.
    M0,
}

impl Board {
    /// Firmware folder under `firmware-examples/`.
    pub fn folder(self) -> &'static str {
        match self {
            Board::M4f => "qemu-m4f",
            Board::M0 => "qemu-m0",
        }
    }

    /// Rust target.
    pub fn target(self) -> &'static str {
        match self {
            Board::M4f => "thumbv7em-none-eabihf",
            Board::M0 => "thumbv6m-none-eabi",
        }
    }

    /// QEMU machine.
    pub fn machine(self) -> &'static str {
        match self {
            Board::M4f => "mps2-an386",
            Board::M0 => "microbit",
        }
    }

    /// Start of the MODEL flash region (`memory.x`).
    pub fn model_address(self) -> u32 {
        match self {
            Board::M4f => 0x0020_0000,
            Board::M0 => 0x0003_0000,
        }
    }

    /// Size of the MODEL flash region (`memory.x`), bytes.
    pub fn model_region_len(self) -> u32 {
        match self {
            Board::M4f => 0x0010_0000,
            Board::M0 => 0x0001_0000,
        }
    }

    /// RAM, bytes.
    pub fn ram_len(self) -> u32 {
        match self {
            Board::M4f => 0x0040_0000,
            Board::M0 => 0x0000_4000,
        }
    }

    /// The core, in words.
    pub fn core(self) -> &'static str {
        match self {
            Board::M4f => "Cortex-M4F",
            Board::M0 => "Cortex-M0",
        }
    }

    /// The board whose QEMU machine is `name` (`mps2-an386`, `microbit`).
    pub fn from_machine(name: &str) -> Option<Board> {
        [Board::M4f, Board::M0]
            .into_iter()
            .find(|b| b.machine() == name)
    }

    /// Instructions per SysTick tick under `-icount shift=0` (1 ns per instruction; SysTick runs
    /// on the 25 MHz (mps2) or 16 MHz (micro:bit) system clock).
    fn insns_per_tick(self) -> f64 {
        match self {
            Board::M4f => 40.0,
            Board::M0 => 62.5,
        }
    }
}

/// Which model a firmware links into its MODEL region.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// The firmware's default (a generated 2→16→32→16→1 SingleNN-MemODE, f32).
    Default,
    /// None: the region stays empty until a model is loaded there ([`RunOptions::load_model`]).
    None,
    /// This model file.
    File(PathBuf),
}

/// The drive.
#[derive(Clone, Debug, PartialEq)]
pub enum Stimulus {
    /// The on-device sine `amplitude * sin(2 pi f t)`, volts and hertz.
    Sine {
        /// Volts.
        amplitude: f64,
        /// Hertz.
        frequency: f64,
    },
    /// A CSV with a `v_s` column (and optionally `t`), linked as a table.
    Table(PathBuf),
}

/// How to build a firmware; see the `ODEFLASH_*` variables in the firmware's `build.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildOptions {
    /// Machine.
    pub board: Board,
    /// Model linked into the MODEL region.
    pub model: ModelSource,
    /// Samples, the first one before any step.
    pub samples: u32,
    /// Hz.
    pub sample_rate: f64,
    /// Drive.
    pub stimulus: Stimulus,
    /// `euler`, `heun`, `rk4`, `rk5`, `dopri5`.
    pub solver: String,
    /// Solver steps per sample.
    pub substeps: u16,
    /// Scratch (f32) to reserve when no model is linked.
    pub scratch_f32: Option<usize>,
    /// The `firmware-examples/` folder; `None`: [`firmware_root`].
    pub firmware_dir: Option<PathBuf>,
}

impl BuildOptions {
    /// Defaults: 1000 samples at 10 kHz of a 1 V, 10 Hz sine, RK4, one step per sample.
    pub fn new(board: Board, model: ModelSource) -> Self {
        BuildOptions {
            board,
            model,
            samples: 1000,
            sample_rate: 10_000.0,
            stimulus: Stimulus::Sine {
                amplitude: 1.0,
                frequency: 10.0,
            },
            solver: "rk4".into(),
            substeps: 1,
            scratch_f32: None,
            firmware_dir: None,
        }
    }

    /// Sets the number of samples.
    pub fn samples(mut self, n: u32) -> Self {
        self.samples = n;
        self
    }

    /// Sets the sine.
    pub fn sine(mut self, amplitude: f64, frequency: f64) -> Self {
        self.stimulus = Stimulus::Sine {
            amplitude,
            frequency,
        };
        self
    }

    /// Sets the sample rate, Hz (with a table: the rate it was sampled at).
    pub fn sample_rate(mut self, hz: f64) -> Self {
        self.sample_rate = hz;
        self
    }

    /// Sets the drive.
    pub fn stimulus(mut self, stimulus: Stimulus) -> Self {
        self.stimulus = stimulus;
        self
    }

    /// Sets the solver (`euler`, `heun`, `rk4`, `rk5`, `dopri5`) and its steps per sample.
    pub fn solver(mut self, solver: &str, substeps: u16) -> Self {
        self.solver = solver.into();
        self.substeps = substeps;
        self
    }

    /// Uses the firmware examples in `dir` instead of [`firmware_root`].
    pub fn firmware_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.firmware_dir = Some(dir.into());
        self
    }

    /// The `firmware-examples/` folder these options build from.
    pub fn root(&self) -> PathBuf {
        self.firmware_dir.clone().unwrap_or_else(firmware_root)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("ODEFLASH_SAMPLES", self.samples.to_string()),
            ("ODEFLASH_SAMPLE_RATE", format!("{:e}", self.sample_rate)),
            ("ODEFLASH_SOLVER", self.solver.clone()),
            ("ODEFLASH_SUBSTEPS", self.substeps.to_string()),
            (
                "ODEFLASH_SCRATCH_F32",
                self.scratch_f32.map(|n| n.to_string()).unwrap_or_default(),
            ),
        ];
        match &self.model {
            ModelSource::Default => env.push(("ODEFLASH_MODEL", String::new())),
            ModelSource::None => env.push(("ODEFLASH_MODEL", "none".into())),
            ModelSource::File(p) => env.push(("ODEFLASH_MODEL", absolute(p))),
        }
        match &self.stimulus {
            Stimulus::Sine {
                amplitude,
                frequency,
            } => {
                env.push(("ODEFLASH_SINE", format!("{amplitude:e},{frequency:e}")));
                env.push(("ODEFLASH_STIMULUS", String::new()));
            }
            Stimulus::Table(p) => env.push(("ODEFLASH_STIMULUS", absolute(p))),
        }
        env
    }

    /// Builds the firmware (`cargo build --release` in its folder) and keeps a private copy of its
    /// ELF files, so later builds with other settings do not change them.
    pub fn build(&self) -> Result<Firmware, Error> {
        static BUILD: Mutex<()> = Mutex::new(());
        let root = self.root();
        let folder = root.join(self.board.folder());
        if !folder.join("Cargo.toml").is_file() {
            return Err(Error::MissingFirmware { dir: folder });
        }
        let target_dir = firmware_target_dir(&folder);
        let mut cmd = Command::new(cargo());
        cmd.current_dir(&folder)
            .args([
                "build",
                "--release",
                "--bins",
                "--target",
                self.board.target(),
            ])
            .arg("--target-dir")
            .arg(&target_dir);
        // The test process's own cargo settings are for the host, not the firmware.
        for v in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "CARGO_MANIFEST_DIR",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        // Threads of this process, then other processes: a build and the copy of its ELF files
        // below must not interleave with another configuration's build in the same folder.
        let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&target_dir)
            .map_err(io(format!("creating {}", target_dir.display())))?;
        let _lock = BuildLock::acquire(&target_dir.join(".odeflash-build.lock"))?;
        let out = cmd.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::MissingTool {
                    tool: "cargo",
                    install: "install Rust with rustup (https://rustup.rs)".into(),
                }
            } else {
                io(format!("running {}", render(&cmd)))(e)
            }
        })?;
        if !out.status.success() {
            return Err(Error::Build {
                command: render(&cmd),
                output: tail(&String::from_utf8_lossy(&out.stderr), 6000),
            });
        }
        // Private copies, one folder per configuration: a later build with other settings
        // rewrites `release/stream`, not these.
        let built = target_dir.join(self.board.target()).join("release");
        let mut key = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(self.env(), &folder), &mut key);
        let dir = target_dir.join("odeflash-harness").join(format!(
            "{}-{:016x}",
            self.board.folder(),
            std::hash::Hasher::finish(&key)
        ));
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut elves = Vec::new();
        for bin in ["stream", "kernel"] {
            let src = built.join(bin);
            if src.exists() {
                let dst = dir.join(bin);
                std::fs::copy(&src, &dst).map_err(io(format!("copying {}", src.display())))?;
                elves.push((bin, dst));
            }
        }
        Ok(Firmware {
            board: self.board,
            options: self.clone(),
            root,
            elves,
        })
    }
}

/// A lock file held across a firmware build and the copy of its output, so that concurrent
/// `odeflash device-check` runs and test processes sharing a firmware target folder never copy
/// each other's ELF. Holds the owner's process id; a lock whose owner is gone (a killed run) is
/// taken over: on Linux when `/proc/PID` no longer exists, elsewhere after ten minutes.
struct BuildLock(PathBuf);

impl BuildLock {
    fn acquire(path: &Path) -> Result<BuildLock, Error> {
        let waited = std::time::Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    use std::io::Write as _;
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(BuildLock(path.to_path_buf()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Self::stale(path) {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    if waited.elapsed() > std::time::Duration::from_secs(1800) {
                        return Err(Error::Run {
                            what: format!(
                                "waited 30 minutes for the firmware build lock {} (delete it if \
                                 no other build is running)",
                                path.display()
                            ),
                            output: String::new(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(io(format!("creating {}", path.display()))(e)),
            }
        }
    }

    fn stale(path: &Path) -> bool {
        let owner = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if cfg!(target_os = "linux") {
            if let Some(pid) = owner {
                return !Path::new(&format!("/proc/{pid}")).exists();
            }
        }
        // No owner yet (just created) or no /proc: by age.
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        age.is_some_and(|a| a > std::time::Duration::from_secs(600))
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A built firmware: copies of its ELF files kept per configuration under the target directory
/// (`odeflash-harness/`).
#[derive(Clone, Debug)]
pub struct Firmware {
    /// Machine.
    pub board: Board,
    /// How it was built.
    pub options: BuildOptions,
    /// The `firmware-examples/` folder it was built from (the plugin's source is found there).
    pub root: PathBuf,
    elves: Vec<(&'static str, PathBuf)>,
}

/// Memory a firmware image takes (from its ELF sections).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Flash of runtime, defmt and application: vector table, code, read-only data, `.data`'s
    /// initial values. The model region is not included.
    pub flash: u64,
    /// Static RAM: `.data`, `.bss`, `.uninit`.
    pub static_ram: u64,
    /// Bytes linked into the MODEL region.
    pub model: u64,
    /// Every allocated section with its size, bytes, in the ELF's order.
    pub sections: Vec<(String, u64)>,
}

impl Firmware {
    /// The ELF of binary `bin` (`stream` or `kernel`).
    pub fn elf(&self, bin: &str) -> Option<&Path> {
        self.elves
            .iter()
            .find(|(b, _)| *b == bin)
            .map(|(_, p)| p.as_path())
    }

    fn stream_elf(&self) -> Result<&Path, Error> {
        self.elf("stream").ok_or_else(|| Error::Run {
            what: "the firmware has no `stream` binary".into(),
            output: String::new(),
        })
    }

    /// Section sizes of the `stream` binary.
    pub fn sizes(&self) -> Result<Sizes, Error> {
        let elf = Elf::read(self.stream_elf()?)?;
        let size = |names: &[&str]| -> u64 {
            elf.sections
                .iter()
                .filter(|s| names.contains(&s.name.as_str()))
                .map(|s| s.size)
                .sum()
        };
        Ok(Sizes {
            flash: size(&[".vector_table", ".text", ".rodata", ".data"]),
            static_ram: size(&[".data", ".bss", ".uninit"]),
            model: size(&[".model"]),
            sections: elf
                .sections
                .iter()
                .map(|s| (s.name.clone(), s.size))
                .collect(),
        })
    }

    /// Runs the `stream` binary.
    pub fn run(&self, opts: &RunOptions) -> Result<RunOutput, Error> {
        self.run_bin("stream", opts)
    }

    /// Runs binary `bin` of this firmware in QEMU and decodes its output.
    pub fn run_bin(&self, bin: &str, opts: &RunOptions) -> Result<RunOutput, Error> {
        let elf_path = self.elf(bin).ok_or_else(|| Error::Run {
            what: format!("the firmware has no `{bin}` binary"),
            output: String::new(),
        })?;
        run_qemu(self.board, &self.root, elf_path, opts)
    }
}

/// How to run a firmware.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// A model file to place at the board's model address (`-device loader`), replacing what the
    /// firmware linked there (build with [`ModelSource::None`], QEMU refuses overlapping images).
    pub load_model: Option<PathBuf>,
    /// Count instructions per step.
    pub count_instructions: bool,
    /// Also count the instructions inside functions whose symbol contains one of these.
    pub count_in_functions: Vec<String>,
    /// Seconds before QEMU is stopped.
    pub timeout_s: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            load_model: None,
            count_instructions: true,
            count_in_functions: vec!["arm_vfma".into()],
            timeout_s: 60,
        }
    }
}

/// One streamed sample.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSample {
    /// Sample index.
    pub k: u32,
    /// Supply voltage, volts.
    pub vs: f32,
    /// Memristor voltage, volts.
    pub v: f32,
    /// Current, amperes.
    pub i: f32,
    /// States after the step.
    pub x: Vec<f32>,
}

/// The configuration the firmware reports at boot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceConfig {
    /// Sample interval, seconds.
    pub dt: f32,
    /// Sine amplitude, volts.
    pub amplitude: f32,
    /// Sine phase step per sample, periods.
    pub phase_step: f32,
    /// Samples.
    pub samples: u32,
}

/// The summary the firmware logs at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSummary {
    /// Steps taken.
    pub steps: u32,
    /// SysTick ticks spent in steps.
    pub systick: u32,
    /// Static RAM, bytes (`_stack_end - _ram_start`).
    pub static_ram: u32,
    /// Stack high-water mark while stepping, bytes.
    pub stack: u32,
    /// Stack high-water mark while decoding the model, bytes.
    pub decode_stack: u32,
}

/// Instruction counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsnCount {
    /// How they were counted.
    pub method: CountMethod,
    /// Marker windows (steps).
    pub windows: u64,
    /// Instructions in all windows.
    pub total: u64,
    /// Fewest in one window.
    pub min: u64,
    /// Most in one window.
    pub max: u64,
    /// Of `total`, those inside [`RunOptions::count_in_functions`].
    pub in_functions: u64,
    /// Per window `(total, in_functions)`, when the plugin was asked for them.
    pub each: Vec<(u64, u64)>,
}

/// How instructions were counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountMethod {
    /// The TCG plugin: exact.
    Plugin,
    /// `-icount shift=0` and SysTick: within a few dozen instructions per step.
    IcountSystick,
}

/// What a run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    /// QEMU's exit code: the firmware's semihosting exit status (0 success, 1 failure), 124 when
    /// the timeout stopped it.
    pub exit_code: i32,
    /// Every decoded log line, `LEVEL message`.
    pub log: Vec<String>,
    /// The streamed samples.
    pub samples: Vec<DeviceSample>,
    /// Reported configuration.
    pub config: Option<DeviceConfig>,
    /// Reported summary.
    pub summary: Option<DeviceSummary>,
    /// Instruction counts.
    pub insns: Option<InsnCount>,
    /// QEMU's standard error.
    pub qemu_stderr: String,
}

impl RunOutput {
    /// Instructions per step (per marker window).
    pub fn insns_per_step(&self) -> Option<f64> {
        let c = self.insns.as_ref()?;
        (c.windows > 0).then(|| c.total as f64 / c.windows as f64)
    }

    /// Log lines at ERROR level.
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.log
            .iter()
            .filter(|l| l.starts_with("ERROR"))
            .map(String::as_str)
    }

    /// The drive, per sample.
    pub fn vs(&self) -> Vec<f32> {
        self.samples.iter().map(|s| s.vs).collect()
    }
}

/// The on-device sine, replayed on the host: `amplitude * sin(2 pi phase)`, the phase advanced by
/// `phase_step` per sample and wrapped into [0, 1), in f32 with the runtime's `sin`.
pub fn sine_stimulus(amplitude: f32, phase_step: f32, samples: usize) -> Vec<f32> {
    let mut phase = 0.0f32;
    (0..samples)
        .map(|_| {
            let v = amplitude * odeflash_runtime::activation::sin(core::f32::consts::TAU * phase);
            phase += phase_step;
            if phase >= 1.0 {
                phase -= 1.0;
            }
            v
        })
        .collect()
}

/// Checks that QEMU, defmt-print, cargo and the board's Rust target are installed; the error says
/// how to install what is missing. (`cargo xtask test` installs them.)
pub fn require_tools(board: Board) -> Result<(), Error> {
    if probe("qemu-system-arm", &["--version"]).is_none() {
        return Err(Error::MissingTool {
            tool: "qemu-system-arm",
            install: "install QEMU for ARM (Debian/Ubuntu: `apt-get install qemu-system-arm`; \
                      `cargo xtask test` does this when run as root)"
                .into(),
        });
    }
    if probe("defmt-print", &["--version"]).is_none() {
        return Err(Error::MissingTool {
            tool: "defmt-print",
            install: "`cargo install defmt-print --locked` (about 4 minutes; `cargo xtask test` \
                      does this)"
                .into(),
        });
    }
    if probe("timeout", &["--version"]).is_none() {
        return Err(Error::MissingTool {
            tool: "timeout",
            install: "install GNU coreutils".into(),
        });
    }
    if probe(&cargo(), &["--version"]).is_none() {
        return Err(Error::MissingTool {
            tool: "cargo",
            install: "the firmware is built with cargo: install Rust with rustup \
                      (https://rustup.rs)"
                .into(),
        });
    }
    if let Some(list) = probe("rustup", &["target", "list", "--installed"]) {
        if !list.lines().any(|l| l.trim() == board.target()) {
            return Err(Error::MissingTool {
                tool: "rust target",
                install: format!(
                    "`rustup target add {}` (`cargo xtask test` does this)",
                    board.target()
                ),
            });
        }
    }
    Ok(())
}

/// The first line of `qemu-system-arm --version`, if it runs.
pub fn qemu_version() -> Option<String> {
    probe("qemu-system-arm", &["--version"])
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
}

/// Whether QEMU tests should be skipped: `ODEFLASH_SKIP_QEMU=1`.
pub fn skip_requested() -> bool {
    std::env::var("ODEFLASH_SKIP_QEMU").is_ok_and(|v| v == "1")
}

fn probe(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ODEFLASH_FIRMWARE_DIR`, else the `firmware-examples/` of the checkout this crate was built
/// from.
pub fn firmware_root() -> PathBuf {
    if let Some(d) = std::env::var_os("ODEFLASH_FIRMWARE_DIR") {
        return PathBuf::from(d);
    }
    // This crate sits at `trainer/device` in the workspace.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or_else(|| Path::new("../.."))
        .join("firmware-examples")
}

/// Where firmware builds go: `ODEFLASH_FIRMWARE_TARGET_DIR`, else `$CARGO_TARGET_DIR/firmware`
/// (shared by the boards, apart from the host's own builds so their locks never meet), else the
/// firmware folder's own `target/`.
pub fn firmware_target_dir(folder: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os("ODEFLASH_FIRMWARE_TARGET_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return absolute_path(Path::new(&d)).join("firmware");
    }
    folder.join("target")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn absolute_path(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn absolute(p: &Path) -> String {
    absolute_path(p).to_string_lossy().into_owned()
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

// ---------------------------------------------------------------------------------------------
// The instruction-counting plugin.

/// The plugin's C source and the API header it includes, from `ROOT/qemu-plugin/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PluginSource {
    c: String,
    h: String,
}

impl PluginSource {
    fn read(root: &Path) -> Option<PluginSource> {
        let dir = root.join("qemu-plugin");
        Some(PluginSource {
            c: std::fs::read_to_string(dir.join("insn_window.c")).ok()?,
            h: std::fs::read_to_string(dir.join("qemu_plugin_api.h")).ok()?,
        })
    }

    fn hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(self, &mut h);
        std::hash::Hasher::finish(&h)
    }
}

/// Plugin API versions to try: 1 up to QEMU 8, 2 from QEMU 9 (10.0 refuses 1).
fn plugin_api_versions() -> Vec<u32> {
    if let Some(v) = std::env::var("ODEFLASH_QEMU_PLUGIN_API")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![v];
    }
    let major = probe("qemu-system-arm", &["--version"])
        .and_then(|s| {
            let rest = s.split("version ").nth(1)?;
            rest.split('.').next()?.trim().parse::<u32>().ok()
        })
        .unwrap_or(7);
    if major >= 9 {
        vec![2, 3, 4, 1]
    } else {
        vec![1, 2]
    }
}

/// Builds the plugin for API `version` into a cache directory; `None` without a C compiler.
fn plugin(version: u32, source: &PluginSource) -> Option<PathBuf> {
    type Built = Vec<(u32, u64, Option<PathBuf>)>;
    static BUILT: Mutex<Built> = Mutex::new(Vec::new());
    let hash = source.hash();
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, p)) = built.iter().find(|(v, h, _)| *v == version && *h == hash) {
        return p.clone();
    }
    let result = (|| {
        // Cached across runs, named by the source's hash; written under a temporary name and
        // renamed, so concurrent processes never load a half-written file.
        let tag = format!("v{version}-{hash:016x}");
        let dir = std::env::temp_dir().join("odeflash-qemu-plugin");
        let so = dir.join(format!("libinsn_window-{tag}.so"));
        if so.exists() {
            return Some(so);
        }
        std::fs::create_dir_all(&dir).ok()?;
        let src = dir.join(format!("build-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&src).ok()?;
        std::fs::write(src.join("insn_window.c"), &source.c).ok()?;
        std::fs::write(src.join("qemu_plugin_api.h"), &source.h).ok()?;
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let ok = Command::new(cc)
            .current_dir(&src)
            .args(["-shared", "-fPIC", "-O2"])
            .arg(format!("-DQEMU_PLUGIN_API_VERSION={version}"))
            .args(["-o", "plugin.so", "insn_window.c"])
            .output()
            .ok()?
            .status
            .success();
        let renamed = ok && std::fs::rename(src.join("plugin.so"), &so).is_ok();
        let _ = std::fs::remove_dir_all(&src);
        renamed.then_some(so)
    })();
    built.push((version, hash, result.clone()));
    result
}

/// The plugin API version that loaded last time.
static PLUGIN_API: OnceLock<u32> = OnceLock::new();

// ---------------------------------------------------------------------------------------------
// Running.

fn run_qemu(
    board: Board,
    root: &Path,
    elf_path: &Path,
    opts: &RunOptions,
) -> Result<RunOutput, Error> {
    let elf = Elf::read(elf_path)?;
    let scratch = tempfile::Builder::new()
        .prefix("odeflash-run-")
        .tempdir()
        .map_err(io("creating a temporary directory"))?;
    let counts = scratch.path().join("insns.txt");
    let markers = (
        elf.symbol("odeflash_window_start"),
        elf.symbol("odeflash_window_stop"),
    );
    let mut plugin_arg = None;
    let mut versions = Vec::new();
    if opts.count_instructions {
        if let (Some(start), Some(stop)) = markers {
            versions = match PLUGIN_API.get() {
                Some(&v) => vec![v],
                None => plugin_api_versions(),
            };
            let mut arg = format!(
                "start={:#x},stop={:#x},each=1,out={}",
                start.value,
                stop.value,
                counts.display()
            );
            for f in &opts.count_in_functions {
                for s in elf.symbols.iter().filter(|s| s.name.contains(f.as_str())) {
                    let lo = s.value & !1;
                    arg.push_str(&format!(",range={:#x}-{:#x}", lo, lo + s.size));
                }
            }
            plugin_arg = Some(arg);
        }
    }
    // Try the plugin API versions in turn; without a C compiler, count with -icount and SysTick.
    let mut last_err = None;
    let force_icount = std::env::var("ODEFLASH_QEMU_COUNT").is_ok_and(|v| v == "icount");
    let source = (plugin_arg.is_some() && !force_icount)
        .then(|| PluginSource::read(root))
        .flatten();
    let attempts: Vec<Option<(u32, PathBuf)>> = if let Some(source) = &source {
        let v: Vec<_> = versions
            .iter()
            .filter_map(|&v| plugin(v, source).map(|p| Some((v, p))))
            .collect();
        if v.is_empty() {
            vec![None]
        } else {
            v
        }
    } else {
        vec![None]
    };
    for attempt in attempts {
        let mut cmd = Command::new("timeout");
        cmd.arg(opts.timeout_s.to_string())
            .arg("qemu-system-arm")
            .args(["-machine", board.machine(), "-nographic"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-kernel")
            .arg(elf_path);
        if let Some(model) = &opts.load_model {
            cmd.arg("-device").arg(format!(
                "loader,file={},addr={:#x}",
                absolute(model),
                board.model_address()
            ));
        }
        let method = match (&attempt, &plugin_arg) {
            (Some((_, so)), Some(arg)) => {
                cmd.arg("-plugin").arg(format!("{},{arg}", so.display()));
                Some(CountMethod::Plugin)
            }
            (None, Some(_)) => {
                cmd.args(["-icount", "shift=0"]);
                Some(CountMethod::IcountSystick)
            }
            _ => None,
        };
        let _ = std::fs::remove_file(&counts);
        let out = run_piped(cmd, elf_path)?;
        let plugin_refused = method == Some(CountMethod::Plugin)
            && out.qemu_status != 0
            && out.log.is_empty()
            && out.qemu_stderr.to_lowercase().contains("plugin");
        if plugin_refused {
            last_err = Some(Error::Run {
                what: "QEMU refused the instruction-counting plugin (set \
                       ODEFLASH_QEMU_PLUGIN_API to the plugin API version it accepts)"
                    .into(),
                output: out.qemu_stderr,
            });
            continue;
        }
        if let Some((v, _)) = attempt {
            let _ = PLUGIN_API.set(v);
        }
        return Ok(parse_output(board, out, method, &counts));
    }
    Err(last_err.unwrap_or_else(|| Error::Run {
        what: "QEMU did not run".into(),
        output: String::new(),
    }))
}

struct Piped {
    qemu_status: i32,
    qemu_stderr: String,
    log: Vec<String>,
}

/// `timeout N qemu-system-arm ... | defmt-print -e ELF`.
fn run_piped(mut qemu: Command, elf: &Path) -> Result<Piped, Error> {
    let rendered = render(&qemu);
    let mut q = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("starting {rendered}")))?;
    let q_out = q.stdout.take().ok_or_else(|| Error::Run {
        what: "no QEMU stdout".into(),
        output: String::new(),
    })?;
    let mut q_err = q.stderr.take().ok_or_else(|| Error::Run {
        what: "no QEMU stderr".into(),
        output: String::new(),
    })?;
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = q_err.read_to_string(&mut s);
        s
    });
    let d = Command::new("defmt-print")
        .arg("-e")
        .arg(elf)
        .args(["--log-format", "{L} {s}"])
        .stdin(Stdio::from(q_out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let d = match d {
        Ok(d) => d,
        Err(e) => {
            let _ = q.kill();
            let _ = q.wait();
            return Err(Error::MissingTool {
                tool: "defmt-print",
                install: format!("{e}: `cargo install defmt-print --locked`"),
            });
        }
    };
    let decoded = d.wait_with_output().map_err(io("running defmt-print"))?;
    let status = q.wait().map_err(io(format!("waiting for {rendered}")))?;
    let qemu_stderr = err_thread.join().unwrap_or_default();
    let text = String::from_utf8_lossy(&decoded.stdout);
    let mut log: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    let d_err = String::from_utf8_lossy(&decoded.stderr);
    if !d_err.trim().is_empty() {
        log.extend(d_err.lines().map(|l| format!("HOST {l}")));
    }
    Ok(Piped {
        qemu_status: status.code().unwrap_or(-1),
        qemu_stderr,
        log,
    })
}

fn parse_f32(s: &str) -> Option<f32> {
    s.trim().parse().ok()
}

fn parse_output(board: Board, p: Piped, method: Option<CountMethod>, counts: &Path) -> RunOutput {
    let mut samples = Vec::new();
    let mut config = None;
    let mut summary = None;
    for line in &p.log {
        let Some((_level, msg)) = line.split_once(' ') else {
            continue;
        };
        let msg = msg.trim_start();
        if let Some(rest) = msg.strip_prefix("s ") {
            // s K VS V I [X0, X1, ...]
            let (head, states) = rest.split_once('[').unwrap_or((rest, "]"));
            let f: Vec<&str> = head.split_whitespace().collect();
            let x: Option<Vec<f32>> = states
                .trim_end_matches(']')
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(parse_f32)
                .collect();
            if let (4, Some(x)) = (f.len(), x) {
                if let (Ok(k), Some(vs), Some(v), Some(i)) = (
                    f[0].parse(),
                    parse_f32(f[1]),
                    parse_f32(f[2]),
                    parse_f32(f[3]),
                ) {
                    samples.push(DeviceSample { k, vs, v, i, x });
                }
            }
        } else if msg.starts_with("config ") {
            let kv = key_values(msg);
            if let (Some(dt), Some(amplitude), Some(phase_step), Some(samples)) = (
                kv("dt").and_then(parse_f32),
                kv("amplitude").and_then(parse_f32),
                kv("phase_step").and_then(parse_f32),
                kv("samples").and_then(|s| s.parse().ok()),
            ) {
                config = Some(DeviceConfig {
                    dt,
                    amplitude,
                    phase_step,
                    samples,
                });
            }
        } else if msg.starts_with("done ") {
            let kv = key_values(msg);
            let n = |k: &str| kv(k).and_then(|s| s.parse::<u32>().ok());
            if let (Some(steps), Some(systick), Some(static_ram), Some(stack), Some(decode_stack)) = (
                n("steps"),
                n("systick"),
                n("static_ram"),
                n("stack"),
                n("decode_stack"),
            ) {
                summary = Some(DeviceSummary {
                    steps,
                    systick,
                    static_ram,
                    stack,
                    decode_stack,
                });
            }
        }
    }
    let insns = match method {
        Some(CountMethod::Plugin) => read_counts(counts),
        Some(CountMethod::IcountSystick) => summary.map(|s| {
            let total = (s.systick as f64 * board.insns_per_tick()).round() as u64;
            InsnCount {
                method: CountMethod::IcountSystick,
                windows: s.steps as u64,
                total,
                min: 0,
                max: 0,
                in_functions: 0,
                each: Vec::new(),
            }
        }),
        None => None,
    };
    RunOutput {
        exit_code: p.qemu_status,
        log: p.log,
        samples,
        config,
        summary,
        insns,
        qemu_stderr: p.qemu_stderr,
    }
}

/// `key value` pairs of a log line, looked up by key.
fn key_values<'a>(msg: &'a str) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |key: &str| {
        let mut it = msg.split_whitespace();
        while let Some(k) = it.next() {
            if k == key {
                return it.next();
            }
        }
        None
    }
}

fn read_counts(path: &Path) -> Option<InsnCount> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut c = InsnCount {
        method: CountMethod::Plugin,
        windows: 0,
        total: 0,
        min: 0,
        max: 0,
        in_functions: 0,
        each: Vec::new(),
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        match f.first().copied() {
            Some("windows") => c.windows = num(1),
            Some("total") => c.total = num(1),
            Some("min") => c.min = num(1),
            Some("max") => c.max = num(1),
            Some("range") => c.in_functions = num(1),
            Some("window") => c.each.push((num(1), num(2))),
            _ => {}
        }
    }
    Some(c)
}

// ---------------------------------------------------------------------------------------------
// ELF32 (sections and symbols), read directly.

#[derive(Debug)]
struct Section {
    name: String,
    size: u64,
}

#[derive(Debug, Clone)]
struct Symbol {
    name: String,
    value: u64,
    size: u64,
}

#[derive(Debug)]
struct Elf {
    sections: Vec<Section>,
    symbols: Vec<Symbol>,
}

impl Elf {
    fn read(path: &Path) -> Result<Elf, Error> {
        let b = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        Elf::parse(&b).ok_or_else(|| Error::Run {
            what: format!("{} is not a 32-bit little-endian ELF file", path.display()),
            output: String::new(),
        })
    }

    fn parse(b: &[u8]) -> Option<Elf> {
        let u16_at = |o: usize| -> Option<u64> {
            Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u64)
        };
        let u32_at = |o: usize| -> Option<u64> {
            Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as u64)
        };
        if b.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
            return None;
        }
        let shoff = u32_at(0x20)? as usize;
        let shentsize = u16_at(0x2E)? as usize;
        let shnum = u16_at(0x30)? as usize;
        let shstrndx = u16_at(0x32)? as usize;
        let header = |i: usize| shoff + i * shentsize;
        let cstr = |off: usize| -> Option<String> {
            let s = b.get(off..)?;
            let end = s.iter().position(|&c| c == 0)?;
            Some(String::from_utf8_lossy(&s[..end]).into_owned())
        };
        let shstr = u32_at(header(shstrndx) + 0x10)? as usize;
        let mut sections = Vec::new();
        let mut symbols = Vec::new();
        for i in 0..shnum {
            let h = header(i);
            let name = cstr(shstr + u32_at(h)? as usize)?;
            let kind = u32_at(h + 0x04)?;
            let flags = u32_at(h + 0x08)?;
            let offset = u32_at(h + 0x10)? as usize;
            let size = u32_at(h + 0x14)?;
            let link = u32_at(h + 0x18)? as usize;
            const SHF_ALLOC: u64 = 2;
            const SHT_SYMTAB: u64 = 2;
            if flags & SHF_ALLOC != 0 && size > 0 {
                sections.push(Section {
                    name: name.clone(),
                    size,
                });
            }
            if kind == SHT_SYMTAB {
                let strtab = u32_at(header(link) + 0x10)? as usize;
                for s in (offset..offset + size as usize).step_by(16) {
                    symbols.push(Symbol {
                        name: cstr(strtab + u32_at(s)? as usize)?,
                        value: u32_at(s + 4)?,
                        size: u32_at(s + 8)?,
                    });
                }
            }
        }
        Some(Elf { sections, symbols })
    }

    fn symbol(&self, name: &str) -> Option<Symbol> {
        self.symbols.iter().find(|s| s.name == name).cloned()
    }
}
