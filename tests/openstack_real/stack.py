"""A small real OpenStack on 127.0.0.1: Keystone, Glance, Placement, Neutron, Nova (fake
virt driver) and Blazar from PyPI, MariaDB and RabbitMQ from Debian, all under one temp dir.

    python -m tests.openstack_real.stack [DIR]     # start, print a clouds.yaml path, wait

What it does, in order: installs the services into their own virtualenv from
requirements.lock (cached by the lock's hash), starts mariadbd and rabbitmq-server by hand
on kernel-picked ports, writes every service's config, creates the databases and runs the
db syncs, starts each API under gunicorn from a gunicorn.conf.py (oslo.config parses the
process's own arguments, so gunicorn gets none), starts nova-conductor/-scheduler/-compute
and blazar-manager, then sets the cloud up as an operator would (endpoints in region
KVM@TACC, the `public` external network, the Chameleon image name, m1.small/m1.large, a
`freepool` aggregate and the compute host in Blazar, a demo project with users and
application credentials in a clouds.yaml).

Every process is started in its own session and stopped by its PID's process group, on
success, failure or Ctrl-C (`Stack.stop`, also registered with atexit).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggctl.ports import free_port
from ggctl.provision.errors import find_or_none

HERE = Path(__file__).resolve().parent
LOCK = HERE / "requirements.lock"
BIND_DRIVER = HERE / "bind_driver"
HOST = "127.0.0.1"
REGION = "KVM@TACC"
IMAGE = "CC-Ubuntu24.04"
COMPUTE_HOST = "ggnode"
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
ADMIN_PASSWORD = "admin-secret-for-tests"
SERVICE_PASSWORD = "service-secret-for-tests"
DEMO_PROJECT = "CHI-000001"
# Flavors as on KVM@TACC (sizes from its flavor list).
FLAVORS = {"m1.small": (1, 2048, 20), "m1.large": (4, 8192, 40)}
HOST_SLOTS = 7  # m1.large instances the one compute host holds (two users x 3, plus one)
DATABASES = ("glance", "placement", "neutron", "nova_api", "nova_cell0", "nova", "blazar")
START_TIMEOUT = 180.0  # hang detector for one service to answer, on a loaded machine
SERVICES = {
    # name: (catalog type, wsgi app, URL path suffix)
    "keystone": ("identity", "keystone.wsgi.api:application", ""),
    "glance": ("image", "glance.wsgi.api:application", ""),
    "placement": ("placement", "placement.wsgi.api:application", ""),
    "neutron": ("network", "neutron.wsgi.api:application", ""),
    "nova": ("compute", "nova.wsgi.osapi_compute:application", "/v2.1"),
    "blazar": ("reservation", "blazar.wsgi.api:application", "/v1"),
}


class StackError(RuntimeError):
    """The stack could not be built or started (the message names the step and its log)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ggctl" / "openstack-real"


def venv_dir() -> Path:
    """The services' venv, keyed by the lock file, the driver and the Python version."""
    h = hashlib.sha256(LOCK.read_bytes())
    for p in sorted(BIND_DRIVER.iterdir()):
        if p.is_file():
            h.update(p.read_bytes())
    h.update(sys.version.encode())
    return Path(os.environ.get("GGCTL_OPENSTACK_VENV") or cache_root() / h.hexdigest()[:16])


def ensure_venv(log: Path) -> Path:
    """Install the services once; a finished install leaves a marker file."""
    venv = venv_dir()
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        for cmd in (
            [sys.executable, "-m", "venv", str(venv)],
            [
                str(venv / "bin/pip"),
                "install",
                "--no-deps",  # the lock is complete: no resolver run, no surprise upgrade
                "-r",
                str(LOCK),
            ],
            [str(venv / "bin/pip"), "install", "--no-deps", str(BIND_DRIVER)],
        ):
            r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
            if r.returncode:
                raise StackError(f"installing the services failed: {' '.join(cmd)} (see {log})")
    (venv / ".complete").write_text("ok\n")
    return venv


def missing_tools() -> list[str]:
    """Debian's programs the stack needs and that are not installed."""
    path = f"{os.environ.get('PATH', '')}:/usr/sbin"
    need = ("mariadbd", "mariadb-install-db", "mariadb", "epmd")
    missing = [t for t in need if not shutil.which(t, path=path)]
    return missing + ([] if Path(RABBITMQ_SERVER).exists() else ["rabbitmq-server"])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    root: Path
    venv: Path
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    project_id: str = ""

    # ------------------------------------------------------------------ processes

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def _env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OS_", "GGCTL_", "VIRTUAL_ENV", "PYTHON"))
        }
        env["PATH"] = f"{self.venv}/bin:/usr/sbin:{env.get('PATH', '')}"
        env["HOME"] = str(self.root / "home")
        return env

    def spawn(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Proc:
        """Start one long-running process in its own session (its group is stopped whole)."""
        log = self.logs / f"{name}.log"
        out = log.open("ab")
        popen = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**self._env(), **(env or {})},
            cwd=cwd or self.root,
            start_new_session=True,
        )
        out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def run(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> str:
        """A one-shot command (db sync, bootstrap); its output goes to its log."""
        log = self.logs / f"{name}.log"
        r = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**self._env(), **(env or {})},
            cwd=self.root,
            timeout=900,
            check=False,
        )
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}\n")
        if r.returncode:
            raise StackError(f"{name} failed ({r.returncode}): see {log}\n{tail(log)}")
        return r.stdout

    def stop(self) -> None:
        """SIGTERM each process group we started (last first), then SIGKILL what is left."""
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            # the group may outlive its leader (workers, epmd): kill it whole
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        self.procs.clear()

    def stop_one(self, name: str) -> None:
        """Stop one process group (by its leader's PID) and forget it."""
        for proc in [p for p in self.procs if p.name == name]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
            self.procs.remove(proc)

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                raise StackError(
                    f"{proc.name} exited ({proc.popen.returncode}): see {proc.log}\n"
                    f"{tail(proc.log)}"
                )

    def wait_port(self, name: str, port: int) -> None:
        import socket

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            with socket.socket() as s:
                s.settimeout(1)
                if s.connect_ex((HOST, port)) == 0:
                    return
            time.sleep(0.3)
        raise StackError(f"{name} did not listen on {port} in {START_TIMEOUT:.0f} s")

    def wait_http(self, name: str, url: str) -> None:
        """Until the app answers (any status): gunicorn listens before its worker loads it."""
        import requests

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                requests.get(url, timeout=10)
                return
            except requests.RequestException:
                time.sleep(0.5)
        raise StackError(f"{name} did not answer at {url} in {START_TIMEOUT:.0f} s")

    # ------------------------------------------------------------------ config

    def url(self, service: str) -> str:
        return f"http://{HOST}:{self.ports[service]}"

    def db(self, name: str) -> str:
        return f"mysql+pymysql://root@{HOST}:{self.ports['mariadb']}/{name}?charset=utf8mb4"

    @property
    def rabbit(self) -> str:
        return f"rabbit://guest:guest@{HOST}:{self.ports['rabbitmq']}/"

    def authtoken(self, user: str) -> str:
        return self._auth_section("keystone_authtoken", user) + (
            f"www_authenticate_uri = {self.url('keystone')}\nservice_token_roles_required = true\n"
        )

    def _auth_section(self, section: str, user: str) -> str:
        return textwrap.dedent(f"""\
            [{section}]
            auth_type = password
            auth_url = {self.url("keystone")}
            project_domain_name = Default
            user_domain_name = Default
            project_name = service
            username = {user}
            password = {SERVICE_PASSWORD}
            region_name = {REGION}
            """)

    def conf(self, service: str, name: str, text: str) -> Path:
        path = self.root / "etc" / service / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def gunicorn(self, service: str, env: dict[str, str] | None = None) -> None:
        """The API under gunicorn, configured only by its gunicorn.conf.py."""
        _, app, _ = SERVICES[service]
        port = self.ports[service]
        self.conf(
            service,
            "gunicorn.conf.py",
            textwrap.dedent(f"""\
                wsgi_app = {app!r}
                bind = "{HOST}:{port}"
                workers = 1
                threads = 4
                worker_class = "gthread"
                timeout = 300
                control_socket_disable = True
                accesslog = {str(self.logs / (service + "-access.log"))!r}
                access_log_format = '%(m)s %(U)s %(s)s'
                """),
        )
        # gunicorn reads ./gunicorn.conf.py from its working directory
        self.spawn(
            f"{service}-api",
            [str(self.venv / "bin/gunicorn")],
            env={**(env or {}), "PYTHONUNBUFFERED": "1"},
            cwd=self.root / "etc" / service,
        )
        self.wait_http(service, f"http://{HOST}:{port}/")

    # ------------------------------------------------------------------ pieces

    def start_mariadb(self) -> None:
        data = self.root / "mariadb"
        self.ports["mariadb"] = free_port()
        self.run(
            "mariadb-install-db",
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
        )
        self.spawn(
            "mariadb",
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={data}/mysqld.sock",
                f"--pid-file={data}/mysqld.pid",
                f"--port={self.ports['mariadb']}",
                f"--bind-address={HOST}",
                "--user=root",
                "--skip-grant-tables",  # one throwaway root, no passwords
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--max-connections=500",
                "--character-set-server=utf8mb4",
            ],
        )
        self.wait_port("mariadb", self.ports["mariadb"])
        sql = "".join(
            f"CREATE DATABASE IF NOT EXISTS {d} CHARACTER SET utf8mb4;" for d in DATABASES
        )
        self.run(
            "mariadb-create",
            ["mariadb", "-h", HOST, "-P", str(self.ports["mariadb"]), "-u", "root", "-e", sql],
        )

    def start_rabbitmq(self) -> None:
        base = self.root / "rabbitmq"
        base.mkdir()
        self.ports["rabbitmq"] = free_port()
        self.ports["epmd"] = free_port()
        self.ports["rabbit_dist"] = free_port()
        conf = base / "rabbitmq.conf"
        conf.write_text(
            f"listeners.tcp.default = {HOST}:{self.ports['rabbitmq']}\n"
            "loopback_users.guest = true\n"
            "management_agent.disable_metrics_collector = true\n"
        )
        env = {
            "ERL_EPMD_PORT": str(self.ports["epmd"]),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_NODENAME": f"rabbit{self.ports['rabbitmq']}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.ports["rabbitmq"]),
            "RABBITMQ_DIST_PORT": str(self.ports["rabbit_dist"]),
            "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_ALLOW_INPUT": "",
        }
        (base / "enabled_plugins").write_text("[].\n")
        # our own epmd in the foreground, so it is ours to stop (the daemon one would linger)
        self.spawn("epmd", ["epmd", "-port", str(self.ports["epmd"]), "-address", HOST], env=env)
        # the package's own script, not /usr/sbin's wrapper (that one switches user)
        self.spawn("rabbitmq", [RABBITMQ_SERVER], env=env)
        self.wait_port("rabbitmq", self.ports["rabbitmq"])

    def keystone_conf(self, *, app_cred_trusts: bool) -> Path:
        d = self.root / "keystone"
        return self.conf(
            "keystone",
            "keystone.conf",
            textwrap.dedent(f"""\
                [DEFAULT]
                use_stderr = true
                [database]
                connection = sqlite:///{d}/keystone.db
                [fernet_tokens]
                key_repository = {d}/fernet-keys
                [fernet_receipts]
                key_repository = {d}/fernet-keys
                [credential]
                key_repository = {d}/credential-keys
                [security_compliance]
                # Blazar makes a trust from the user's token; Keystone 30 refuses trusts
                # from any application-credential token unless this deprecated switch is
                # on (older Keystones, like Chameleon's, refuse only restricted ones).
                allow_insecure_application_credential_trust_escalation = {app_cred_trusts}
                """),
        )

    def start_keystone(self, *, app_cred_trusts: bool = True) -> None:
        (self.root / "keystone").mkdir(exist_ok=True)
        conf = self.keystone_conf(app_cred_trusts=app_cred_trusts)
        if not (self.root / "keystone" / "keystone.db").exists():
            ks = ["keystone-manage", "--config-file", str(conf)]
            owner = ["--keystone-user", "root", "--keystone-group", "root"]
            self.run("keystone-db-sync", [*ks, "db_sync"])
            self.run("keystone-fernet", [*ks, "fernet_setup", *owner])
            self.run("keystone-credential", [*ks, "credential_setup", *owner])
            url = self.url("keystone")
            self.run(
                "keystone-bootstrap",
                [
                    *ks,
                    "bootstrap",
                    "--bootstrap-password",
                    ADMIN_PASSWORD,
                    "--bootstrap-region-id",
                    REGION,
                    "--bootstrap-public-url",
                    url,
                    "--bootstrap-internal-url",
                    url,
                    "--bootstrap-admin-url",
                    url,
                ],
            )
        self.gunicorn(
            "keystone",
            env={
                "OS_KEYSTONE_CONFIG_DIR": str(conf.parent),
                "OS_KEYSTONE_CONFIG_FILES": "keystone.conf",
            },
        )

    @contextlib.contextmanager
    def keystone_refusing_app_cred_trusts(self) -> Iterator[None]:
        """Keystone 30's default: no trust from any application-credential token."""
        self.stop_one("keystone-api")
        self.start_keystone(app_cred_trusts=False)
        try:
            yield
        finally:
            self.stop_one("keystone-api")
            self.start_keystone(app_cred_trusts=True)

    def common(self, service: str, user: str) -> str:
        """[DEFAULT] basics, the service's own Keystone user and a lock path."""
        return textwrap.dedent(f"""\
            [DEFAULT]
            use_stderr = true
            debug = false
            state_path = {self.root / service}
            [oslo_concurrency]
            lock_path = {self.root / service / "locks"}
            [oslo_policy]
            enforce_new_defaults = true
            enforce_scope = false
            """) + self.authtoken(user)

    def start_glance(self) -> None:
        for d in ("images", "staging", "tasks"):
            (self.root / "glance" / d).mkdir(parents=True)
        text = self.common("glance", "glance") + textwrap.dedent(f"""\
            [database]
            connection = {self.db("glance")}
            [paste_deploy]
            flavor = keystone
            config_file = {self.venv / "etc" / "glance" / "glance-api-paste.ini"}
            [DEFAULT]
            enabled_backends = file:file
            [glance_store]
            default_backend = file
            [file]
            filesystem_store_datadir = {self.root / "glance" / "images"}
            [os_glance_staging_store]
            filesystem_store_datadir = {self.root / "glance" / "staging"}
            [os_glance_tasks_store]
            filesystem_store_datadir = {self.root / "glance" / "tasks"}
            """)
        conf = self.conf("glance", "glance-api.conf", text)
        self.run("glance-db-sync", ["glance-manage", "--config-file", str(conf), "db_sync"])
        self.gunicorn("glance", env={"OS_GLANCE_CONFIG_DIR": str(conf.parent)})

    def start_placement(self) -> None:
        text = self.common("placement", "placement") + textwrap.dedent(f"""\
            [api]
            auth_strategy = keystone
            [placement_database]
            connection = {self.db("placement")}
            """)
        conf = self.conf("placement", "placement.conf", text)
        self.run(
            "placement-db-sync", ["placement-manage", "--config-file", str(conf), "db", "sync"]
        )
        self.gunicorn("placement", env={"OS_PLACEMENT_CONFIG_DIR": str(conf.parent)})

    def start_neutron(self) -> None:
        text = (
            self.common("neutron", "neutron")
            + textwrap.dedent(f"""\
            [DEFAULT]
            core_plugin = ml2
            service_plugins = router
            auth_strategy = keystone
            # no agents, no RPC consumers: Neutron only keeps the database
            transport_url = fake://
            rpc_workers = 0
            rpc_state_report_workers = 0
            notify_nova_on_port_status_changes = false
            notify_nova_on_port_data_changes = false
            allow_overlapping_ips = true
            api_paste_config = {self.venv / "etc" / "neutron" / "api-paste.ini"}
            [database]
            connection = {self.db("neutron")}
            [ml2]
            type_drivers = flat,vxlan
            tenant_network_types = vxlan
            mechanism_drivers = ggbind
            extension_drivers = port_security
            [ml2_type_flat]
            flat_networks = public
            [ml2_type_vxlan]
            vni_ranges = 1:1000
            """)
            + self._auth_section("nova", "nova")
        )
        conf = self.conf("neutron", "neutron.conf", text)
        self.run(
            "neutron-db-sync",
            ["neutron-db-manage", "--config-file", str(conf), "upgrade", "heads"],
        )
        self.gunicorn(
            "neutron",
            env={"OS_NEUTRON_CONFIG_DIR": str(conf.parent), "OS_NEUTRON_CONFIG_FILES": conf.name},
        )

    def start_nova(self) -> None:
        text = self.common("nova", "nova") + textwrap.dedent(f"""\
            [DEFAULT]
            transport_url = {self.rabbit}
            compute_driver = fake.FakeDriver
            # The fake hypervisor reports 800000 MB; keep room for HOST_SLOTS x m1.large
            # only, so that a lease for more is refused as on a full site.
            reserved_host_memory_mb = {800000 - HOST_SLOTS * FLAVORS["m1.large"][1] - 4096}
            host = {COMPUTE_HOST}
            my_ip = {HOST}
            instances_path = {self.root / "nova" / "instances"}
            [api]
            auth_strategy = keystone
            [api_database]
            connection = {self.db("nova_api")}
            [database]
            connection = {self.db("nova")}
            [scheduler]
            discover_hosts_in_cells_interval = 2
            [wsgi]
            api_paste_config = {self.venv / "etc" / "nova" / "api-paste.ini"}
            [oslo_messaging_notifications]
            driver = noop
            """)
        text += self._auth_section("placement", "placement")
        text += self._auth_section("neutron", "neutron")
        text += "[glance]\nregion_name = " + REGION + "\n"
        text += "[cinder]\nos_region_name = " + REGION + "\n"
        conf = self.conf("nova", "nova.conf", text)
        nm = ["nova-manage", "--config-file", str(conf)]
        self.run("nova-api-db-sync", [*nm, "api_db", "sync"])
        self.run(
            "nova-cell0",
            [*nm, "cell_v2", "map_cell0", "--database_connection", self.db("nova_cell0")],
        )
        self.run("nova-cell1", [*nm, "cell_v2", "create_cell", "--name", "cell1", "--verbose"])
        self.run("nova-db-sync", [*nm, "db", "sync"])
        # nova's WSGI app reads api-paste.ini from its config dir, beside nova.conf
        shutil.copy(self.venv / "etc" / "nova" / "api-paste.ini", conf.parent)
        self.gunicorn("nova", env={"OS_NOVA_CONFIG_DIR": str(conf.parent)})
        for svc in ("conductor", "scheduler", "compute"):
            self.spawn(f"nova-{svc}", [f"nova-{svc}", "--config-file", str(conf)])

    def start_blazar(self) -> None:
        text = self.common("blazar", "blazar") + textwrap.dedent(f"""\
            [DEFAULT]
            transport_url = {self.rabbit}
            # a lease delete waits for the manager to remove its flavor and Placement
            # inventory; on a loaded 2-core machine that outlasts the 60 s default
            rpc_response_timeout = 300
            os_auth_host = {HOST}
            os_auth_port = {self.ports["keystone"]}
            os_auth_protocol = http
            os_auth_prefix =
            os_auth_version = v3
            os_admin_username = blazar
            os_admin_password = {SERVICE_PASSWORD}
            os_admin_project_name = service
            os_admin_user_domain_name = Default
            os_admin_project_domain_name = Default
            os_region_name = {REGION}
            identity_service = identity
            [manager]
            plugins = physical.host.plugin,virtual.instance.plugin,flavor.instance.plugin
            [database]
            connection = {self.db("blazar")}
            [nova]
            aggregate_freepool_name = freepool
            [oslo_messaging_notifications]
            driver = noop
            """)
        conf = self.conf("blazar", "blazar.conf", text)
        self.run(
            "blazar-db-sync", ["blazar-db-manage", "--config-file", str(conf), "upgrade", "head"]
        )
        self.gunicorn("blazar", env={"OS_BLAZAR_CONFIG_DIR": str(conf.parent)})
        self.spawn("blazar-manager", ["blazar-manager", "--config-file", str(conf)])

    # ------------------------------------------------------------------ operator

    def admin(self, project: str = "admin") -> Any:
        """An openstacksdk connection as the cloud's admin."""
        import openstack

        return openstack.connection.Connection(
            auth_url=self.url("keystone"),
            username="admin",
            password=ADMIN_PASSWORD,
            project_name=project,
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION,
            interface="public",
        )

    def blazar_admin(self) -> Any:
        from blazarclient import client

        conn = self.admin()
        return client.Client(
            "1", service_type="reservation", session=conn.session, region_name=REGION
        )

    def register_services(self) -> None:
        """Service users (admin in `service`) and one endpoint per interface in KVM@TACC."""
        conn = self.admin()
        ident = conn.identity
        service_project = ident.create_project(name="service", domain_id="default")
        admin_role = ident.find_role("admin", ignore_missing=False)
        # bootstrap made `admin`, `member`, `reader` and (Keystone >= 2025.1) `service`
        service_role = find_or_none(ident.find_role, "service") or ident.create_role(name="service")
        for name, (stype, _, suffix) in SERVICES.items():
            if name == "keystone":
                continue
            user = ident.create_user(name=name, password=SERVICE_PASSWORD, domain_id="default")
            ident.assign_project_role_to_user(service_project, user, admin_role)
            ident.assign_project_role_to_user(service_project, user, service_role)
            svc = ident.create_service(name=name, type=stype)
            for iface in ("public", "internal", "admin"):
                ident.create_endpoint(
                    service_id=svc.id,
                    interface=iface,
                    url=self.url(name) + suffix,
                    region_id=REGION,
                )

    def setup_cloud(self) -> None:
        """What an operator (Chameleon's staff) sets up before users come."""
        conn = self.admin()
        # the compute host shows up once nova-compute reported and the cell mapped it
        deadline = time.monotonic() + START_TIMEOUT
        while not list(conn.compute.hypervisors()):
            self.check_alive()
            if time.monotonic() > deadline:
                raise StackError("nova-compute never registered its hypervisor")
            time.sleep(1)
        for name, (vcpus, ram, disk) in FLAVORS.items():
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True)
        net = conn.network.create_network(
            name="public",
            is_router_external=True,
            provider_network_type="flat",
            provider_physical_network="public",
            is_shared=False,
        )
        # TEST-NET-3: documentation addresses, never routed anywhere (nothing is sent there)
        conn.network.create_subnet(
            network_id=net.id,
            name="public-subnet",
            ip_version=4,
            cidr="203.0.113.0/24",
            gateway_ip="203.0.113.1",
            allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.250"}],
            is_dhcp_enabled=False,
        )
        # Nova's fake driver never reads the disk, but it does want a raw image
        image = conn.image.create_image(
            name=IMAGE,
            disk_format="raw",
            container_format="bare",
            visibility="public",
            data=b"\0" * 1024,
            # a fresh stack has no image to reuse, and the SDK's duplicate check calls
            # find_image with its deprecated ignore_missing default (RemovedInSDK60Warning)
            allow_duplicates=True,
        )
        conn.image.wait_for_status(image, status="active", wait=120)
        # Blazar moves hosts out of the `freepool` aggregate; it must exist first
        conn.compute.create_aggregate(name="freepool")
        self.blazar_admin().host.create(name=COMPUTE_HOST)

    def add_user(self, name: str, *, restricted_cred: bool = False) -> dict[str, str]:
        """A member of the demo project with an application credential (as on Chameleon)."""
        import openstack

        admin = self.admin()
        ident = admin.identity
        project = find_or_none(ident.find_project, DEMO_PROJECT) or ident.create_project(
            name=DEMO_PROJECT, domain_id="default"
        )
        self.project_id = project.id
        # Nova's default 20 cores hold 5 m1.large: two users' 3 + 3 need more
        admin.set_compute_quotas(project.id, cores=100, ram=256000, instances=20)
        password = f"{name}-password"
        user = ident.create_user(name=name, password=password, domain_id="default")
        ident.assign_project_role_to_user(
            project, user, ident.find_role("member", ignore_missing=False)
        )
        ident.assign_project_role_to_user(
            project, user, ident.find_role("reader", ignore_missing=False)
        )
        me = openstack.connection.Connection(
            auth_url=self.url("keystone"),
            username=name,
            password=password,
            project_name=DEMO_PROJECT,
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION,
        )
        info = {"user_id": user.id, "password": password}
        for label, unrestricted in (("cred", True), ("restricted", False)):
            if label == "restricted" and not restricted_cred:
                continue
            cred = me.identity.create_application_credential(
                user=user.id, name=f"{name}-{label}", unrestricted=unrestricted
            )
            info[f"{label}_id"] = cred.id
            info[f"{label}_secret"] = cred.secret
        self.users[name] = info
        return info

    def clouds_yaml(self) -> Path:
        """clouds.yaml as Chameleon's application-credential page writes it, one entry per
        user (plus `<user>-restricted`, `wrong-secret` and `admin`)."""
        import yaml

        clouds: dict[str, Any] = {}
        for name, info in self.users.items():
            for label in ("cred", "restricted"):
                if f"{label}_id" not in info:
                    continue
                entry = name if label == "cred" else f"{name}-{label}"
                clouds[entry] = {
                    "auth": {
                        "auth_url": self.url("keystone"),
                        "application_credential_id": info[f"{label}_id"],
                        "application_credential_secret": info[f"{label}_secret"],
                    },
                    "region_name": REGION,
                    "interface": "public",
                    "identity_api_version": 3,
                    "auth_type": "v3applicationcredential",
                }
        first = next(iter(self.users.values()))
        clouds["wrong-secret"] = {
            **clouds[next(iter(self.users))],
            "auth": {
                "auth_url": self.url("keystone"),
                "application_credential_id": first["cred_id"],
                "application_credential_secret": "not-the-secret",
            },
        }
        clouds["admin"] = {
            "auth": {
                "auth_url": self.url("keystone"),
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "project_name": "admin",
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": REGION,
            "identity_api_version": 3,
        }
        path = self.root / "clouds.yaml"
        path.write_text(yaml.safe_dump({"clouds": clouds}))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ whole

    def start(self) -> None:
        """Everything, independent pieces side by side (db syncs mostly wait on imports
        and the database): nova-compute must find Placement up when it first reports."""
        for d in ("logs", "home", "etc"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            self.ports[name] = free_port()
        self._parallel(self.start_mariadb, self.start_rabbitmq, self.start_keystone)
        self.register_services()

        def placement_then_nova() -> None:
            self.start_placement()
            self.start_nova()

        self._parallel(
            self.start_glance, self.start_neutron, placement_then_nova, self.start_blazar
        )
        nova_conf = str(self.root / "etc/nova/nova.conf")
        self.run(
            "nova-discover",
            ["nova-manage", "--config-file", nova_conf, "cell_v2", "discover_hosts", "--verbose"],
        )
        self.setup_cloud()

    def _parallel(self, *steps: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(steps)) as pool:
            futures = [pool.submit(step) for step in steps]
        for f in futures:
            f.result()  # the first failure, raised here

    def save(self) -> Path:
        """stack.json: what a second test run needs to attach to this running stack."""
        path = self.root / "stack.json"
        doc = {
            "venv": str(self.venv),
            "ports": self.ports,
            "users": self.users,
            "project_id": self.project_id,
        }
        path.write_text(json.dumps(doc))
        path.chmod(0o600)
        return path

    @classmethod
    def attach(cls, root: Path) -> Stack:
        """A stack another process started (`python -m tests.openstack_real.stack`);
        stopping it stays that process's job."""
        doc = json.loads((root / "stack.json").read_text())
        return cls(
            root,
            Path(doc["venv"]),
            ports=doc["ports"],
            users=doc["users"],
            project_id=doc["project_id"],
        )

    def access_log(self) -> list[str]:
        """Every request the APIs served so far ("METHOD /path status"), all services."""
        lines: list[str] = []
        for name in SERVICES:
            path = self.logs / f"{name}-access.log"
            if path.exists():
                lines += [f"{name} {line}" for line in path.read_text().splitlines()]
        return lines


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@contextlib.contextmanager
def running(root: Path, log: Path | None = None) -> Iterator[Stack]:
    """The whole stack, stopped (every process group, by PID) however the block ends."""
    venv = ensure_venv(log or root / "install.log")
    stack = Stack(root, venv)
    atexit.register(stack.stop)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        atexit.unregister(stack.stop)


def main() -> None:
    import tempfile

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ggos-"))
    root.mkdir(parents=True, exist_ok=True)
    # SIGTERM ends like Ctrl-C: through the finally that stops every process
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    t0 = time.monotonic()
    with running(root) as stack:
        stack.add_user("alice", restricted_cred=True)
        stack.add_user("bob")
        stack.save()
        print(
            json.dumps(
                {
                    "clouds_yaml": str(stack.clouds_yaml()),
                    "root": str(root),
                    "seconds": round(time.monotonic() - t0),
                }
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
