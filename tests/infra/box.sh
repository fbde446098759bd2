#!/usr/bin/env bash
# A throwaway "workstation box" for integration tests: a Debian rootfs booted with systemd as PID 1 in
# its own pid/mount/uts/cgroup namespaces, sharing the host's network, reachable over SSH on a loopback
# port, and dressed up like a WSL2 distro where the product looks (wsl.conf, /usr/lib/wsl/lib, a fake
# nvidia-smi, a WSL kernel release string).
#
#   bash tests/infra/box.sh rootfs                  # build (once) the cached rootfs tarball, print its path
#   bash tests/infra/box.sh start DIR PORT          # fresh box in DIR, sshd on 127.0.0.1:PORT
#   bash tests/infra/box.sh exec DIR -- CMD...      # run CMD inside as root (nsenter)
#   bash tests/infra/box.sh ssh DIR -- CMD...       # run CMD inside as dev over ssh
#   bash tests/infra/box.sh reboot DIR              # clean poweroff, boot again on the same files
#   bash tests/infra/box.sh stop DIR                # poweroff, kill leftovers, unmount, remove DIR
#   bash tests/infra/box.sh status DIR              # prints running/stopped; exit 0 only when running
#
# Layout of DIR: root/ (the box's /), id_ed25519{,.pub} (the client key for dev), pid (systemd's host
# pid), port, name, boot.log (what the last boot printed before systemd took over). Needs root on the host.
#
# Environment: VLLM_WS_CACHE (default ~/.cache/vllm-workstation), BOX_MIRROR (Debian mirror for the
# rootfs build), BOX_EXTRA_PACKAGES (space separated, part of the cache key), BOX_BOOT_TIMEOUT (s, 90),
# BOX_KEY (use this private key instead of generating one per box), BOX_FAKE_WSL_KERNEL (1; 0 leaves
# /proc/version and osrelease as the host's).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${VLLM_WS_CACHE:-$HOME/.cache/vllm-workstation}
fixtures=$here/tests/fixtures/box
SUITE=bookworm
MIRROR=${BOX_MIRROR:-http://deb.debian.org/debian}
PACKAGES="systemd systemd-sysv dbus libpam-systemd openssh-server openssh-client sudo python3 python3-venv
  ca-certificates curl gnupg iproute2 iputils-ping procps gzip xz-utils zstd util-linux coreutils less
  ${BOX_EXTRA_PACKAGES:-}"
# Bump when the build recipe (not the package list) changes, so stale tarballs are not reused.
RECIPE=2
BOOT_TIMEOUT=${BOX_BOOT_TIMEOUT:-90}
CG=/sys/fs/cgroup

log() { printf '[box] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (namespaces, mounts, chroot)"

package_list() { tr -s ' ' '\n' <<<"$PACKAGES" | grep . | sort -u; }

rootfs_path() {
  local key
  key=$( (printf '%s\n' "$SUITE" "$RECIPE"; package_list) | sha256sum | cut -c1-16)
  echo "$cache/box/rootfs-$key.tar.gz"
}

cmd_rootfs() {
  local out; out=$(rootfs_path)
  mkdir -p "$cache/box"
  # Parallel test files may all ask for the rootfs at once; only one of them builds.
  exec 9>"$cache/box/.rootfs.lock"
  flock 9
  if [[ -s $out ]]; then echo "$out"; return; fi
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get install -y debootstrap >&2 || { apt-get update >&2 && apt-get install -y debootstrap >&2; }
  fi
  local t0=$SECONDS tmp
  tmp=$(mktemp -d "$cache/box/.build.XXXXXX")
  # shellcheck disable=SC2064
  trap "umount -R -l '$tmp/root' 2>/dev/null || true; rm -rf '$tmp'" EXIT
  log "debootstrap $SUITE (minbase) from $MIRROR into $tmp/root; this takes a few minutes"
  debootstrap --variant=minbase --include="$(package_list | paste -sd,)" \
    "$SUITE" "$tmp/root" "$MIRROR" >&2
  log "trimming the rootfs"
  local r=$tmp/root
  chroot "$r" apt-get clean
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/log/*.log "$r"/tmp/* "$r"/var/tmp/*
  # Per-box identity is made at start; a shared one would make every box the same machine and host.
  rm -f "$r"/etc/ssh/ssh_host_* && : >"$r/etc/machine-id" && rm -f "$r/var/lib/dbus/machine-id"
  # Sources the product's apt steps can use; debootstrap leaves only the mirror it was given.
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" >"$r/etc/apt/sources.list"
  log "packing $out"
  tar -C "$r" --numeric-owner --xattrs -czf "$tmp/rootfs.tar.gz" .
  mv -f "$tmp/rootfs.tar.gz" "$out"
  log "rootfs ready in $((SECONDS - t0))s: $out ($(du -h "$out" | cut -f1))"
  echo "$out"
}

# --- state helpers -----------------------------------------------------------------------------------

box_pid() {
  # The pid is only trusted while it still is the systemd we started (pids get reused).
  local dir=$1 pid
  [[ -s $dir/pid ]] || return 1
  pid=$(<"$dir/pid")
  [[ -d /proc/$pid ]] || return 1
  [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$(realpath "$dir/root")" ]] || return 1
  echo "$pid"
}

# Where the host's cgroup v2 tree is: /sys/fs/cgroup on a unified host, cgroup/unified on a hybrid one.
v2_root() {
  if [[ $(stat -f -c %T "$CG" 2>/dev/null) == cgroup2fs ]]; then echo "$CG"
  elif [[ $(stat -f -c %T "$CG/unified" 2>/dev/null) == cgroup2fs ]]; then echo "$CG/unified"; fi
}

box_cgroups() {
  local name=$1 v2
  [[ -d $CG/systemd ]] && echo "$CG/systemd/vllm-box-$name"
  v2=$(v2_root)
  [[ -n $v2 ]] && echo "$v2/vllm-box-$name"
  return 0
}

ORIG_CGROUPS=()
enter_box_cgroups() {
  ensure_systemd_hierarchy
  local c
  mapfile -t ORIG_CGROUPS < <(awk -F: -v cg="$CG" -v v2="$(v2_root)" '
    $2 == "name=systemd" { print cg "/systemd" $3 }
    $1 == "0" && $2 == "" && v2 != "" { print v2 $3 }' /proc/self/cgroup)
  for c in $(box_cgroups "$1"); do mkdir -p "$c" && echo $$ >"$c/cgroup.procs"; done
}
leave_box_cgroups() {
  local c
  for c in "${ORIG_CGROUPS[@]}"; do if [[ -d $c ]]; then echo $$ >"$c/cgroup.procs"; fi; done
}

ensure_systemd_hierarchy() {
  # systemd (v252) needs a name=systemd v1 hierarchy on a hybrid host; a pure v2 host has none to mount.
  if [[ -d $CG/cpu || -d $CG/memory ]] && ! mountpoint -q "$CG/systemd"; then
    log "mounting the name=systemd cgroup hierarchy at $CG/systemd"
    mkdir -p "$CG/systemd" && mount -t cgroup -o none,name=systemd cgroup "$CG/systemd"
  fi
}

mounts_under() {
  # Deepest first, so children go before their parents.
  local real; real=$(realpath -m "$1")
  awk -v p="$real/" '{ m = $5; gsub(/\\040/, " ", m); if (index(m "/", p) == 1) print m }' /proc/self/mountinfo |
    awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

in_box() {
  local dir=$1; shift
  local pid; pid=$(box_pid "$dir") || die "box in $dir is not running"
  nsenter -t "$pid" -a -r -w env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb LANG=C.UTF-8 "$@"
}

# --- configure a fresh rootfs ------------------------------------------------------------------------

configure() {
  local dir=$1 port=$2 name=$3 r=$1/root
  echo "$port" >"$dir/port"
  echo "$name" >"$dir/name"

  echo "$name" >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$name" >"$r/etc/hosts"
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"
  # The host's resolver works because the box shares the host's network namespace.
  rm -f "$r/etc/resolv.conf" && cp -L /etc/resolv.conf "$r/etc/resolv.conf"

  chroot "$r" useradd -m -u 1000 -U -s /bin/bash -c "test user" dev
  chroot "$r" usermod -aG sudo dev
  echo 'dev ALL=(ALL) NOPASSWD:ALL' >"$r/etc/sudoers.d/dev" && chmod 0440 "$r/etc/sudoers.d/dev"

  local key=$dir/id_ed25519
  if [[ -n ${BOX_KEY:-} ]]; then
    install -m 0600 "$BOX_KEY" "$key" && ssh-keygen -y -f "$key" >"$key.pub"
  else
    ssh-keygen -q -t ed25519 -N '' -C "dev@$name" -f "$key"
  fi
  chmod 0600 "$key"
  install -d -m 0700 -o 1000 -g 1000 "$r/home/dev/.ssh"
  install -m 0600 -o 1000 -g 1000 "$key.pub" "$r/home/dev/.ssh/authorized_keys"

  chroot "$r" ssh-keygen -A >/dev/null
  # Debian's sshd_config includes sshd_config.d first, and sshd keeps the first value it reads.
  cat >"$r/etc/ssh/sshd_config.d/00-box.conf" <<EOF
Port $port
ListenAddress 127.0.0.1:$port
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UseDNS no
EOF

  # WSL2 look-alike, where the product looks.
  printf '[boot]\nsystemd=true\n' >"$r/etc/wsl.conf"
  install -d "$r/usr/lib/wsl/lib" "$r/etc/vllm-ws-test"
  install -m 0644 "$fixtures/libcuda.so.1" "$r/usr/lib/wsl/lib/libcuda.so.1"
  install -m 0755 "$fixtures/nvidia-smi" "$r/usr/lib/wsl/lib/nvidia-smi"
  install -m 0644 "$fixtures/nvidia-smi.csv" "$r/etc/vllm-ws-test/nvidia-smi.csv"
  echo /usr/lib/wsl/lib >"$r/etc/ld.so.conf.d/ld.wsl.conf"
  install -m 0644 "$fixtures/version" "$r/etc/vllm-ws-test/proc-version"
  install -m 0644 "$fixtures/osrelease" "$r/etc/vllm-ws-test/proc-osrelease"

  # Units that need real hardware or a host role the box does not have; masked so the system reaches
  # "running" instead of "degraded" and boots fast.
  local u
  for u in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service systemd-networkd.service \
    systemd-networkd.socket systemd-networkd-wait-online.service systemd-resolved.service \
    systemd-timesyncd.service getty@.service serial-getty@.service console-getty.service \
    getty.target systemd-logind-varlink.socket sys-kernel-config.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
    systemd-modules-load.service kmod-static-nodes.service systemd-remount-fs.service \
    systemd-sysctl.service systemd-hwdb-update.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    man-db.timer; do
    ln -sfn /dev/null "$r/etc/systemd/system/$u"
  done
  mkdir -p "$r/etc/systemd/system.conf.d"
  # A box stuck on a hung unit should fail the test quickly, not after the default 90s.
  printf '[Manager]\nDefaultTimeoutStopSec=15s\nDefaultTimeoutStartSec=60s\n' \
    >"$r/etc/systemd/system.conf.d/box.conf"
}

# --- boot / wait / shutdown --------------------------------------------------------------------------

boot() {
  local dir=$1 name r pid
  dir=$(realpath "$dir"); r=$dir/root; name=$(<"$dir/name")
  ensure_systemd_hierarchy
  local cgs=() c
  mapfile -t cgs < <(box_cgroups "$name")
  for c in "${cgs[@]}"; do mkdir -p "$c"; done
  local fake=${BOX_FAKE_WSL_KERNEL:-1}

  # The inner script runs as the pid namespace's init until it execs systemd. Joining the box cgroups
  # before unsharing the cgroup namespace makes them the box's cgroup root: systemd sees itself at "/"
  # and boxes never touch the host's or each other's cgroups.
  # shellcheck disable=SC2016
  setsid unshare -p -f -m -u --propagation private --kill-child=SIGKILL -- env -i \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin R="$r" FAKE="$fake" CGS="${cgs[*]}" bash -c '
    set -e
    for c in $CGS; do echo $$ >"$c/cgroup.procs"; done
    exec unshare -C -- bash -c '"'"'
      set -e
      # A mount point as /, as on a real system: findmnt, systemd and docker-ish tools expect one.
      mount --bind "$R" "$R"
      mount -t proc proc "$R/proc"
      mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
      mount -t tmpfs -o mode=755,nosuid,nodev,noexec tmpfs "$R/sys/fs/cgroup"
      if [ -d /sys/fs/cgroup/systemd ]; then
        mkdir -p "$R/sys/fs/cgroup/systemd" "$R/sys/fs/cgroup/unified"
        mount -t cgroup -o none,name=systemd,nosuid,nodev,noexec cgroup "$R/sys/fs/cgroup/systemd"
        [ -d /sys/fs/cgroup/unified ] && mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup/unified"
        mount -o remount,ro,nosuid,nodev,noexec "$R/sys/fs/cgroup"
      else
        mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
      fi
      mount -t tmpfs -o mode=755,size=4m,nosuid tmpfs "$R/dev"
      for d in null zero full random urandom tty; do
        touch "$R/dev/$d" && mount --bind "/dev/$d" "$R/dev/$d"
      done
      mkdir -p "$R/dev/pts" "$R/dev/shm"
      mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
      ln -s pts/ptmx "$R/dev/ptmx"
      mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
      ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"
      ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"
      : >"$R/dev/console"
      mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"
      mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
      if [ "$FAKE" = 1 ]; then
        mount --bind "$R/etc/vllm-ws-test/proc-version" "$R/proc/version"
        mount --bind "$R/etc/vllm-ws-test/proc-osrelease" "$R/proc/sys/kernel/osrelease"
      fi
      exec chroot "$R" /usr/bin/env -i container=other TERM=dumb /lib/systemd/systemd --show-status=no
    '"'"'
  ' </dev/null >"$dir/boot.log" 2>&1 &
  local unshare_pid=$!
  # systemd is the child that unshare forks into the new pid namespace.
  local i
  for ((i = 0; i < 100; i++)); do
    pid=$(awk '{print $1}' "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null)
    if [[ -n $pid && $(readlink "/proc/$pid/exe" 2>/dev/null) == "$r/"*systemd ]]; then break; fi
    pid=
    kill -0 "$unshare_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $pid ]] || { cat "$dir/boot.log" >&2; die "systemd did not start in $dir"; }
  echo "$pid" >"$dir/pid"
  echo "$unshare_pid" >"$dir/unshare.pid"
  wait_ready "$dir"
}

wait_ready() {
  local dir=$1 port state="" deadline=$((SECONDS + BOOT_TIMEOUT))
  port=$(<"$dir/port")
  while ((SECONDS < deadline)); do
    box_pid "$dir" >/dev/null || { cat "$dir/boot.log" >&2; die "systemd in $dir exited during boot"; }
    state=$(in_box "$dir" systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.3
  done
  if [[ $state != running && $state != degraded ]]; then
    log "box $dir did not boot in ${BOOT_TIMEOUT}s (state: ${state:-none}); jobs and journal follow"
    in_box "$dir" systemctl list-jobs --no-pager >&2 || true
    in_box "$dir" journalctl -b --no-pager -n 200 >&2 || cat "$dir/boot.log" >&2
    die "box did not boot"
  fi
  if [[ $state == degraded ]]; then
    log "box is degraded; failed units:"
    in_box "$dir" systemctl --failed --no-pager --no-legend >&2 || true
  fi
  while ((SECONDS < deadline)); do
    if ssh_box "$dir" true 2>/dev/null; then
      log "box $(<"$dir/name") up: pid $(<"$dir/pid"), ssh dev@127.0.0.1:$port (key $dir/id_ed25519)"
      return
    fi
    sleep 0.3
  done
  in_box "$dir" journalctl -u ssh --no-pager -n 50 >&2 || true
  die "sshd in $dir did not accept dev's key on 127.0.0.1:$port"
}

ssh_box() {
  local dir=$1; shift
  ssh -i "$dir/id_ed25519" -p "$(<"$dir/port")" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5 -o IdentitiesOnly=yes \
    dev@127.0.0.1 "$@"
}

# Ends systemd: clean poweroff first, SIGKILL of the namespace's init (which takes every process of
# the namespace with it) when it hangs. Leaves mounts for the caller.
halt() {
  local dir=$1 pid i
  pid=$(box_pid "$dir") || pid=""
  if [[ -n $pid ]]; then
    in_box "$dir" systemctl poweroff --no-block >/dev/null 2>&1 || kill -RTMIN+4 "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then log "systemd in $dir ignored poweroff for 30s; killing it"; kill -9 "$pid" 2>/dev/null || true; fi
    for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  fi
  # The unshare parent and anything that ever joined the box's cgroups (nsenter from a dead caller).
  if [[ -s $dir/unshare.pid ]]; then
    local up; up=$(<"$dir/unshare.pid")
    if [[ -d /proc/$up && $(tr '\0' ' ' <"/proc/$up/cmdline" 2>/dev/null) == unshare* ]]; then kill -9 "$up" 2>/dev/null || true; fi
  fi
  local name c p
  if [[ -s $dir/name ]]; then
    name=$(<"$dir/name")
    for c in $(box_cgroups "$name"); do
      [[ -d $c ]] || continue
      for ((i = 0; i < 50; i++)); do
        p=$(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null)
        [[ -z $p ]] && break
        # shellcheck disable=SC2086
        kill -9 $p 2>/dev/null || true
        sleep 0.1
      done
      find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  fi
  rm -f "$dir/pid" "$dir/unshare.pid"
}

unmount_all() {
  local dir=$1 m
  for m in $(mounts_under "$dir"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  if [[ -n $(mounts_under "$dir") ]]; then
    for m in $(mounts_under "$dir"); do umount -l "$m" 2>/dev/null || true; done
  fi
  [[ -z $(mounts_under "$dir") ]] || die "mounts left under $dir: $(mounts_under "$dir" | paste -sd' ')"
}

# --- subcommands -------------------------------------------------------------------------------------

cmd_start() {
  local dir=${1:?usage: start DIR PORT} port=${2:?usage: start DIR PORT} tarball name t0=$SECONDS
  [[ $port =~ ^[0-9]+$ ]] || die "bad port $port"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "127.0.0.1:$port is already in use"; fi
  tarball=$(cmd_rootfs)
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  # Other files in DIR (the test helper's owner record) stay; a previous box in it goes.
  halt "$dir"
  unmount_all "$dir"
  rm -rf --one-file-system "$dir/root" "$dir"/id_ed25519* "$dir/port" "$dir/name" "$dir/boot.log"
  mkdir "$dir/root"
  name=$(basename "$dir" | tr -c 'a-zA-Z0-9-\n' '-' | cut -c1-60)
  echo "$name" >"$dir/name"
  # From here on this script and its children (tar, ssh probes) sit in the box's cgroups, so a stop
  # that races a start (a test timing out during startBox) kills them too instead of leaving a tar
  # writing into a directory being removed.
  enter_box_cgroups "$name"
  log "extracting $tarball into $dir/root"
  tar -C "$dir/root" --numeric-owner --xattrs -xzf "$tarball"
  configure "$dir" "$port" "$name"
  log "booting systemd (${SECONDS}s since start)"
  boot "$dir"
  leave_box_cgroups
  log "started in $((SECONDS - t0))s"
}

cmd_stop() {
  local dir=${1:?usage: stop DIR}
  [[ -e $dir ]] || return 0
  dir=$(realpath "$dir")
  [[ $dir != / && -d $dir ]] || die "refusing to stop $dir"
  halt "$dir"
  unmount_all "$dir"
  rm -rf --one-file-system "$dir"
  [[ ! -e $dir ]] || die "could not remove $dir"
  log "stopped and removed $dir"
}

cmd_reboot() {
  local dir=${1:?usage: reboot DIR}
  dir=$(realpath "$dir")
  [[ -s $dir/name && -d $dir/root ]] || die "no box in $dir"
  halt "$dir"
  unmount_all "$dir"
  log "booting $dir again"
  boot "$dir"
}

cmd_exec() {
  local dir=${1:?usage: exec DIR -- CMD...}; shift
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "usage: exec DIR -- CMD..."
  in_box "$dir" "$@"
}

cmd_ssh() {
  local dir=${1:?usage: ssh DIR -- CMD...}; shift
  [[ ${1:-} == -- ]] && shift
  ssh_box "$dir" "$@"
}

cmd_status() {
  local dir=${1:?usage: status DIR}
  if box_pid "$dir" >/dev/null; then echo running; else echo stopped; return 1; fi
}

sub=${1:-}; shift || true
case $sub in
  rootfs) cmd_rootfs ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  reboot) cmd_reboot "$@" ;;
  exec) cmd_exec "$@" ;;
  ssh) cmd_ssh "$@" ;;
  status) cmd_status "$@" ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
