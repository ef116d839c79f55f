//! A test LAN made of network namespaces: one "switch" namespace holding a
//! bridge, and one namespace per host, each with an `eth0` veth port on the
//! bridge. Everything is torn down on drop, also when a test fails; child
//! processes are stopped by the PIDs we started.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Namespaces and bridges need root. In CI they must run; elsewhere a
/// non-root run skips with a printed reason.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: CI must run this as root (network namespaces)");
    }
    eprintln!("skipping {test}: needs root for network namespaces");
    false
}

pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{tool} is not installed: run scripts/deps (the README test command does)"
    );
}

pub struct Host {
    pub name: String,
    pub ns: String,
    pub mac: String,
    pub ip: Option<String>,
}

pub struct Lan {
    pub id: String,
    switch: String,
    pub hosts: Vec<Host>,
    children: Vec<(String, Child)>,
    pub dir: tempfile::TempDir,
}

fn run(cmd: &[&str]) -> Output {
    let o = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl Lan {
    /// `hosts`: (name, MAC, optional "IP/prefix").
    pub fn new(hosts: &[(&str, &str, Option<&str>)]) -> Lan {
        let id = format!(
            "pst{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let switch = format!("{id}-sw");
        let mut lan = Lan {
            id: id.clone(),
            switch: switch.clone(),
            hosts: Vec::new(),
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        // The server drops to `nobody`: it must be able to read what tests put here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(lan.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        run(&["ip", "netns", "add", &switch]);
        run(&[
            "ip",
            "-n",
            &switch,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ]);
        run(&["ip", "-n", &switch, "link", "set", "br0", "up"]);
        for (i, (name, mac, ip)) in hosts.iter().enumerate() {
            let ns = format!("{id}-{name}");
            // Registered before it exists, so Drop removes it even if setup fails halfway.
            lan.hosts.push(Host {
                name: name.to_string(),
                ns: ns.clone(),
                mac: mac.to_string(),
                ip: ip.map(|s| s.split('/').next().unwrap().to_string()),
            });
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            lan.wire(&format!("p{i}"), &ns, "eth0", mac, *ip);
        }
        lan
    }

    /// A second interface `ifname` in another LAN's host namespace `ns`,
    /// on this LAN's bridge: how a router joins two LANs. Deleting either
    /// namespace removes it.
    pub fn plug(&self, ns: &str, ifname: &str, mac: &str, ip: &str) {
        self.wire(&format!("q{ifname}"), ns, ifname, mac, Some(ip));
    }

    /// A veth pair: `port` on the bridge, `ifname` in namespace `ns` with
    /// `mac` (and `ip`), both up.
    fn wire(&self, port: &str, ns: &str, ifname: &str, mac: &str, ip: Option<&str>) {
        run(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            ns,
        ]);
        run(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "set",
            port,
            "master",
            "br0",
            "up",
        ]);
        run(&["ip", "-n", ns, "link", "set", ifname, "address", mac]);
        run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        if let Some(ip) = ip {
            run(&["ip", "-n", ns, "addr", "add", ip, "dev", ifname]);
        }
    }

    /// A tap port on the bridge, for a qemu guest; returns the switch
    /// namespace the guest must run in to open it.
    pub fn add_tap(&self, tap: &str) -> String {
        run(&[
            "ip",
            "-n",
            &self.switch,
            "tuntap",
            "add",
            tap,
            "mode",
            "tap",
        ]);
        run(&[
            "ip",
            "-n",
            &self.switch,
            "link",
            "set",
            tap,
            "master",
            "br0",
            "up",
        ]);
        self.switch.clone()
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    pub fn ns(&self, name: &str) -> String {
        self.host(name).ns.clone()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Runs a command inside a host and waits for it.
    pub fn exec(&self, host: &str, cmd: &[&str]) -> Output {
        let ns = self.ns(host);
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend_from_slice(cmd);
        Command::new(full[0])
            .args(&full[1..])
            .env("PXE_SIDECAR_STATUS__SOCKET", self.path("status.sock"))
            .output()
            .unwrap()
    }

    /// `exec`, for set-up steps that must work (routes, sysctls).
    pub fn exec_ok(&self, host: &str, cmd: &[&str]) {
        let o = self.exec(host, cmd);
        assert!(o.status.success(), "{cmd:?} in {host}: {o:?}");
    }

    /// Starts a long-running command inside a host; its output goes to
    /// `<label>.log` in the LAN's temp dir.
    pub fn spawn(&mut self, host: &str, label: &str, cmd: &[&str]) -> PathBuf {
        let ns = self.ns(host);
        self.spawn_in(&ns, label, cmd, &[])
    }

    /// As `spawn`, with extra environment variables.
    pub fn spawn_env(
        &mut self,
        host: &str,
        label: &str,
        cmd: &[&str],
        env: &[(&str, &str)],
    ) -> PathBuf {
        let ns = self.ns(host);
        self.spawn_in(&ns, label, cmd, env)
    }

    /// Starts a long-running command in the switch namespace (qemu on a tap).
    pub fn spawn_on_switch(&mut self, label: &str, cmd: &[&str]) -> PathBuf {
        let ns = self.switch.clone();
        self.spawn_in(&ns, label, cmd, &[])
    }

    fn spawn_in(&mut self, ns: &str, label: &str, cmd: &[&str], env: &[(&str, &str)]) -> PathBuf {
        let log = self.path(&format!("{label}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        // every pxe-sidecar of this LAN gets its own status socket: the
        // default path in /run would clash between tests running at once
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .env("PXE_SIDECAR_STATUS__SOCKET", self.path("status.sock"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        self.children.push((label.to_string(), child));
        log
    }

    /// The PID of a labelled child (`ip netns exec` execs, so it is the program's).
    pub fn pid(&self, label: &str) -> i32 {
        self.children
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, c)| c.id() as i32)
            .unwrap()
    }

    /// True while the labelled child runs.
    pub fn alive(&mut self, label: &str) -> bool {
        self.children
            .iter_mut()
            .find(|(l, _)| l == label)
            .is_some_and(|(_, c)| c.try_wait().ok().flatten().is_none())
    }

    /// Stops one child (SIGTERM, then SIGKILL after 3 s) and returns its log.
    pub fn stop(&mut self, label: &str) -> String {
        if let Some(pos) = self.children.iter().position(|(l, _)| l == label) {
            let (_, mut c) = self.children.remove(pos);
            stop_child(&mut c);
        }
        std::fs::read_to_string(self.path(&format!("{label}.log"))).unwrap_or_default()
    }

    /// Runs `f` on a thread that has entered the host's network namespace:
    /// every socket it opens lives on that host.
    pub fn in_host<T: Send + 'static>(
        &self,
        host: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{}", self.ns(host));
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

fn stop_child(c: &mut Child) {
    // SAFETY: kill on the PID of a child we spawned and have not reaped.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if c.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            stop_child(c);
        }
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .output();
    }
}

/// Waits until `file` contains `needle`, or panics with the file's text.
pub fn wait_for_log(file: &Path, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > deadline {
            panic!("{} never said {needle:?}; it said:\n{text}", file.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `pxe-sidecar serve` on a host with `config` (TOML text) and waits
/// until it listens. Returns its log and config paths.
pub fn start_server(lan: &mut Lan, host: &str, config: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    start_server_env(lan, host, config, extra, &[])
}

/// As `start_server`, with extra environment variables for the server.
pub fn start_server_env(
    lan: &mut Lan,
    host: &str,
    config: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (PathBuf, PathBuf) {
    let cfg = lan.path("pxe.toml");
    std::fs::write(&cfg, config).unwrap();
    let cfg_s = cfg.display().to_string();
    let mut args = vec![
        env!("CARGO_BIN_EXE_pxe-sidecar"),
        "--config",
        &cfg_s,
        "serve",
        "--interface",
        "eth0",
    ];
    args.extend_from_slice(extra);
    let log = lan.spawn_env(host, "pxe-sidecar", &args, env);
    wait_for_log(&log, "proxyDHCP listening", Duration::from_secs(10));
    (log, cfg)
}

/// dnsmasq in the foreground on a host's eth0, with no config file, no DNS
/// and its leases in the LAN's temp dir; `extra` says what it serves.
/// Returns its log (label `dnsmasq-<host>`).
pub fn start_dnsmasq(lan: &mut Lan, host: &str, extra: &[&str]) -> PathBuf {
    require("dnsmasq");
    let leases = format!(
        "--dhcp-leasefile={}",
        lan.path(&format!("{host}.leases")).display()
    );
    // Its own pid file: the default /var/run/dnsmasq.pid collides between
    // tests running at the same time ("failed to open pidfile: File exists").
    let pid = format!(
        "--pid-file={}",
        lan.path(&format!("dnsmasq-{host}.pid")).display()
    );
    let mut args = vec![
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        "--interface=eth0",
        "--log-facility=-",
        &leases,
        &pid,
    ];
    args.extend_from_slice(extra);
    lan.spawn(host, &format!("dnsmasq-{host}"), &args)
}

/// dnsmasq as a TFTP server only (no DHCP, no DNS) on a host's eth0,
/// pinned to CPU 0 like every server in the benches, serving `root` to at
/// most `max` transfers at once; returns once it serves.
pub fn start_dnsmasq_tftp(lan: &mut Lan, host: &str, root: &Path, max: u32) -> PathBuf {
    let root = format!("--tftp-root={}", root.display());
    let max = format!("--tftp-max={max}");
    let pid = format!("--pid-file={}", lan.path("dnsmasq.pid").display());
    let log = lan.spawn(
        host,
        "dnsmasq",
        &[
            "taskset",
            "-c",
            "0",
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--enable-tftp",
            "--interface=eth0",
            "--bind-interfaces",
            &root,
            "--log-facility=-",
            &max,
            &pid,
        ],
    );
    wait_for_log(&log, "TFTP root is", Duration::from_secs(10));
    log
}

/// nfs-ganesha (VFS FSAL, NFSv3 over TCP on 2049, MOUNT on 20048) exporting
/// `export` from a host, with the rpcbind it insists on registering with.
/// `pin`: a `taskset` CPU list. Returns the labels to stop, ganesha's first.
pub fn start_ganesha(
    lan: &mut Lan,
    host: &str,
    tag: &str,
    export: &Path,
    rw: bool,
    pin: &str,
) -> Vec<String> {
    let rpcbind = format!("rpcbind-{tag}");
    lan.spawn(host, &rpcbind, &["rpcbind", "-f", "-w"]);
    std::thread::sleep(Duration::from_millis(300));
    let conf = lan.path(&format!("ganesha-{tag}.conf"));
    std::fs::write(
        &conf,
        format!(
            "NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFS_KRB5 {{ Active_krb5 = false; }}\n\
             EXPORT {{ Export_Id = 1; Path = {p}; Pseudo = {p}; Protocols = 3; Transports = TCP; Access_Type = {access}; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }} }}\n\
             LOG {{ Default_Log_Level = WARN; }}\n",
            p = export.display(),
            access = if rw { "RW" } else { "RO" },
        ),
    )
    .unwrap();
    let label = format!("ganesha-{tag}");
    let conf = conf.display().to_string();
    let pid = lan
        .path(&format!("ganesha-{tag}.pid"))
        .display()
        .to_string();
    lan.spawn(
        host,
        &label,
        &[
            "taskset",
            "-c",
            pin,
            "ganesha.nfsd",
            "-F",
            "-f",
            &conf,
            "-L",
            "/dev/stderr",
            "-p",
            &pid,
        ],
    );
    vec![label, rpcbind]
}

/// What `pxe-sidecar status [--json]` prints on a host, for the server
/// started with `cfg`.
pub fn status(lan: &Lan, host: &str, cfg: &Path, json: bool) -> String {
    let mut args = vec![
        env!("CARGO_BIN_EXE_pxe-sidecar"),
        "--config",
        cfg.to_str().unwrap(),
        "status",
    ];
    if json {
        args.push("--json");
    }
    let o = lan.exec(host, &args);
    assert!(
        o.status.success(),
        "status: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A LAN of `hosts` whose host "router" runs a plain dnsmasq handing out
/// `range` ("10.81.0.100,10.81.0.200"), ready when this returns.
pub fn with_router(hosts: &[(&str, &str, Option<&str>)], range: &str) -> Lan {
    let mut lan = Lan::new(hosts);
    let range = format!("--dhcp-range={range},1h");
    let log = start_dnsmasq(
        &mut lan,
        "router",
        &["--bind-interfaces", &range, "--no-ping"],
    );
    wait_for_log(&log, "DHCP, IP range", Duration::from_secs(10));
    lan
}

/// `pxe-sidecar probe --arch ARCH` from a host's eth0: whether it passed,
/// and what it printed.
pub fn probe(lan: &Lan, host: &str, arch: &str) -> (bool, String) {
    probe_with(lan, host, &["--arch", arch])
}

/// `pxe-sidecar probe` from a host's eth0 with `args`.
pub fn probe_with(lan: &Lan, host: &str, args: &[&str]) -> (bool, String) {
    let mut cmd = vec![
        env!("CARGO_BIN_EXE_pxe-sidecar"),
        "probe",
        "--interface",
        "eth0",
        "--wait",
        "2",
    ];
    cmd.extend_from_slice(args);
    let o = lan.exec(host, &cmd);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}
