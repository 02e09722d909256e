//! Automation for the workspace, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! A plain binary rather than shell scripts so it behaves the same on every machine and can
//! check for what a fresh machine lacks before it is needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const TARGETS: [&str; 2] = ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"];

const HELP: &str = "\
cargo xtask <command>

  demo            the main job, end to end on the CPU (see README)
  test            every test: installs missing targets and the QEMU tools (qemu-system-arm,
                  defmt-print), builds the runtime for both Cortex-M targets and the
                  firmware examples, checks formatting, runs the workspace tests (the
                  device tests boot the firmware examples in QEMU)
  size            code size of the runtime on thumbv7em-none-eabihf (release, no model)
  size-firmware   flash and static RAM of the QEMU Cortex-M4F firmware example (model excluded)
  bench           criterion benchmarks and the 18-trajectory ensemble
  fuzz [SECONDS]  runs the decoder fuzz target (needs nightly and cargo-fuzz)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(),
        Some("size") => size().map(|_| ()),
        Some("size-firmware") => size_firmware(),
        Some("bench") => bench(),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("60")),
        Some("help") | Some("--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", render(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", render(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", render(cmd));
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", render(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            render(cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Adds the Cortex-M targets if rustup lacks them; explains what to do where rustup is absent.
fn ensure_targets() -> Result<()> {
    let installed = match output(Command::new("rustup").args(["target", "list", "--installed"])) {
        Ok(s) => s,
        Err(e) => bail!(
            "rustup is needed to add the Cortex-M targets ({e}); install rustup, or add \
             {} to your toolchain by other means",
            TARGETS.join(" and ")
        ),
    };
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        let mut cmd = Command::new("rustup");
        cmd.args(["target", "add"]).args(&missing);
        run(&mut cmd)?;
    }
    Ok(())
}

fn demo() -> Result<()> {
    run(Command::new("bash").arg("scripts/demo.sh"))
}

/// Firmware examples: standalone workspaces, built (and format-checked) on their own.
const FIRMWARE: [&str; 3] = [
    "firmware-examples/qemu-m4f",
    "firmware-examples/qemu-m0",
    "firmware-examples/nucleo-f446re-rig",
];

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// Installs what the QEMU device tests (`tests/tests/device.rs`) need: `qemu-system-arm` with apt
/// when running as root, `defmt-print` with cargo (it stays in ~/.cargo/bin, so only the first
/// run pays its few minutes). `ODEFLASH_SKIP_QEMU=1` skips both, and the device tests.
fn ensure_tools() -> Result<()> {
    if std::env::var("ODEFLASH_SKIP_QEMU").is_ok_and(|v| v == "1") {
        eprintln!("ODEFLASH_SKIP_QEMU=1: QEMU tools not checked, device tests skipped");
        return Ok(());
    }
    if !has("qemu-system-arm") {
        if !(is_root() && has("apt-get")) {
            bail!(
                "qemu-system-arm is needed by the device tests: install it (Debian/Ubuntu: \
                 `sudo apt-get install qemu-system-arm`), or set ODEFLASH_SKIP_QEMU=1 to skip them"
            );
        }
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "qemu-system-arm"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if !has("defmt-print") {
        run(cargo().args(["install", "defmt-print", "--locked"]))?;
    }
    if !has("cc") {
        eprintln!(
            "no C compiler (`cc`): instructions per step will be counted with -icount and \
             SysTick instead of the exact QEMU plugin"
        );
    }
    Ok(())
}

fn test() -> Result<()> {
    ensure_targets()?;
    ensure_tools()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    for fw in FIRMWARE {
        run(cargo().current_dir(fw).args(["fmt", "--", "--check"]))?;
    }
    // The runtime must build for both targets with no std and no alloc, with and without defmt.
    for target in TARGETS {
        run(cargo().args([
            "build",
            "--release",
            "-p",
            "odeflash-runtime",
            "--target",
            target,
        ]))?;
        run(cargo().args([
            "build",
            "--release",
            "-p",
            "odeflash-runtime",
            "--features",
            "defmt",
            "--target",
            target,
        ]))?;
    }
    run(cargo().args([
        "clippy",
        "-p",
        "odeflash-runtime",
        "--features",
        "std",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The firmware examples build (the rig one needs a board to run; the QEMU ones also run in
    // the device tests).
    for fw in FIRMWARE {
        run(cargo().current_dir(fw).args(["build", "--release"]))?;
    }
    // Tests run optimized: burn is unusably slow unoptimized, and one release build then serves
    // the tests, the demo and the benchmarks.
    run(cargo().args(["test", "--workspace", "--all-targets", "--release"]))?;
    run(cargo().args(["test", "--workspace", "--doc", "--release"]))?;
    // The CUDA backend must keep building (offline: burn 0.21's cubecl-cuda needs no LLVM
    // download); CI has no GPU, so it is built, not run.
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "odeflash-cli",
        "--features",
        "cuda",
    ]))?;
    Ok(())
}

/// Builds the size probe (a minimal firmware that decodes and steps a model from a flash region)
/// and reports its sections.
fn size() -> Result<u64> {
    ensure_targets()?;
    let probe = Path::new("firmware-examples/size-probe");
    run(cargo().current_dir(probe).args(["build", "--release"]))?;
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| probe.join("target"));
    let elf = target_dir.join("thumbv7em-none-eabihf/release/size-probe");
    let elf = if elf.is_absolute() {
        elf
    } else {
        project_root().join(elf)
    };
    let sections = elf_sections(&elf)?;
    let text: u64 = sections
        .iter()
        .filter(|(n, _)| n == ".text" || n == ".rodata" || n == ".vector_table")
        .map(|s| s.1)
        .sum();
    let ram: u64 = sections
        .iter()
        .filter(|(n, _)| n == ".data" || n == ".bss" || n == ".uninit")
        .map(|s| s.1)
        .sum();
    println!("size probe: {}", elf.display());
    for (n, s) in &sections {
        println!("  {n:<14} {s:>8} bytes");
    }
    println!("flash (vector table + text + rodata): {text} bytes");
    println!("static RAM (data + bss): {ram} bytes");
    Ok(text)
}

/// Section sizes of an ELF32 little-endian file, read directly (no binutils needed).
fn elf_sections(path: &Path) -> Result<Vec<(String, u64)>> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let u16_at = |o: usize| -> Result<u64> {
        Ok(u16::from_le_bytes(b.get(o..o + 2).context("short ELF")?.try_into()?) as u64)
    };
    let u32_at = |o: usize| -> Result<u64> {
        Ok(u32::from_le_bytes(b.get(o..o + 4).context("short ELF")?.try_into()?) as u64)
    };
    if b.get(..5) != Some(&[0x7f, b'E', b'L', b'F', 1][..]) {
        bail!("{} is not a 32-bit ELF file", path.display());
    }
    let shoff = u32_at(0x20)? as usize;
    let shentsize = u16_at(0x2E)? as usize;
    let shnum = u16_at(0x30)? as usize;
    let shstrndx = u16_at(0x32)? as usize;
    let strtab_off = u32_at(shoff + shstrndx * shentsize + 0x10)? as usize;
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let name_off = u32_at(h)? as usize;
        let flags = u32_at(h + 0x08)?;
        let size = u32_at(h + 0x14)?;
        const SHF_ALLOC: u64 = 2;
        if flags & SHF_ALLOC == 0 || size == 0 {
            continue;
        }
        let name_bytes = b.get(strtab_off + name_off..).context("bad section name")?;
        let end = name_bytes.iter().position(|&c| c == 0).unwrap_or(0);
        out.push((
            String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
            size,
        ));
    }
    Ok(out)
}

/// Builds the QEMU Cortex-M4F firmware example (runtime, defmt, application, its default model in
/// a separate region) and reports flash and static RAM without the model. The stack high-water
/// mark needs a run: `cargo test -p odeflash-tests --test device -- --nocapture` prints it.
fn size_firmware() -> Result<()> {
    ensure_targets()?;
    let fw = Path::new("firmware-examples/qemu-m4f");
    run(cargo()
        .current_dir(fw)
        .args(["build", "--release", "--bin", "stream"]))?;
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| fw.join("target"));
    let elf = project_root().join(target_dir.join("thumbv7em-none-eabihf/release/stream"));
    let sections = elf_sections(&elf)?;
    let sum = |names: &[&str]| -> u64 {
        sections
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|s| s.1)
            .sum()
    };
    println!("QEMU M4F firmware: {}", elf.display());
    for (n, s) in &sections {
        println!("  {n:<14} {s:>8} bytes");
    }
    println!(
        "flash without the model (vector table + text + rodata + data): {} bytes",
        sum(&[".vector_table", ".text", ".rodata", ".data"])
    );
    println!("model region (.model): {} bytes", sum(&[".model"]));
    println!(
        "static RAM (data + bss + uninit): {} bytes",
        sum(&[".data", ".bss", ".uninit"])
    );
    Ok(())
}

fn bench() -> Result<()> {
    run(cargo().args(["bench", "-p", "odeflash-host-bench"]))?;
    run(cargo().args([
        "run",
        "--release",
        "-p",
        "odeflash-host-bench",
        "--bin",
        "ensemble",
    ]))
}

fn fuzz(seconds: &str) -> Result<()> {
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_err() {
        bail!(
            "cargo-fuzz is not installed: `cargo install cargo-fuzz` (and `rustup toolchain \
             install nightly`), then run this again"
        );
    }
    run(Command::new("cargo").current_dir("runtime").args([
        "+nightly",
        "fuzz",
        "run",
        "decode",
        "--",
        &format!("-max_total_time={seconds}"),
    ]))
}
