"""The Lab API: the only door to a running lab, for the CLI, the web UI, links and
the toolbox (DESIGN.md §1).

It ties the layers together in one direction: topology -> plan -> backend.
`up` reads the lab file once and plans it once; the plan goes into the lab's
journal (lab/store.py), and every later verb works from that stored plan and
the backend the journal names. Verbs that change a lab hold that lab's lock;
verbs that only look (ls, exec, the toolbox) take none. A running lab is
reached through a `LabSession`: its plan, and handles on its nodes and on
its switch (backends/base.py), the same whatever backend built it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from palmnet.backends.base import Backend, LiveNode, NodeHandle, Switch
from palmnet.diagnostics.crash import checkpoint
from palmnet.errors import InputError, LabError
from palmnet.kernel import userns
from palmnet.lab import rootless, store
from palmnet.lab.backends import backend_for, backend_of
from palmnet.lab.rootless import require_root
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal

# host (the neighbour table) and supervisor are imported by the verbs that change a
# lab: `exec` and `ls` use neither, and start a few milliseconds sooner for it.

if TYPE_CHECKING:
    from palmnet.plan.build import Held
    from palmnet.topology.model import Lab

Report = Callable[[str], None]


def check_daemon_configs(plan: Plan) -> None:
    """What a daemon would refuse, reported as bad input before anything is made."""
    from palmnet.services.bird import routing_problems

    for node in plan.nodes:
        if node.routing is not None:
            problems = routing_problems(node.routing)
            if problems:
                raise InputError(
                    "; ".join(problems), file=plan.source, key=f"nodes.{node.name}.routing"
                )


def plan_model(lab: Lab, held: Held | None = None) -> Plan:
    """The checked plan of a lab; `held`: the leases of the running lab it replaces."""
    from palmnet.plan.build import plan_lab

    plan = plan_lab(lab, held)
    check_daemon_configs(plan)
    if any(n.docker for n in lab.nodes.values()):
        from palmnet.lab.lxd_admin import check_docker_images

        check_docker_images(lab)
    return plan


def plan_file(path: str | Path, rootless_lab: bool = False) -> Plan:
    """The plan of a lab file (`palmnet plan`): read once, planned once, no root.
    `rootless_lab`: also refuse what a lab without root cannot have (`plan --rootless`)."""
    from palmnet.topology.loader import load_lab_text, read_lab_file

    model = load_lab_text(read_lab_file(path), str(path))
    if rootless_lab:
        rootless.refuse(model, None, False)
    return plan_model(model)


def _replan(j: Journal, launched: dict[str, str], pools: dict[str, str], running: Plan) -> Plan:
    """The plan of the lab's stored file text with `launch`'s copies and `isp renumber`'s
    pools (a verb that changes the lab; uci: folders resolve against the stored
    absolute path of the file). The hosts keep the DHCP leases `running` gave them."""
    from palmnet.plan.build import held_leases
    from palmnet.topology.copies import with_copies, with_pools
    from palmnet.topology.loader import load_lab_text

    lab = with_copies(
        load_lab_text(j.meta("topology"), j.meta("source")), launched, j.meta("launch_images", {})
    )
    plan = plan_model(with_pools(lab, pools), held_leases(running))
    return dataclasses.replace(plan, backend=j.meta("backend", plan.backend))


def _check_new_names(plan: Plan, names: list[str]) -> None:
    """`launch` names new nodes, as `lxc launch` does: a name the lab has (from its
    file or an earlier launch) is refused, not re-templated under the running node."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"node '{name}' is given twice")
        seen.add(name)
        if plan.has_node(name):
            raise InputError(f"node '{name}' already exists in lab {plan.lab}")


def _check_docker_backend(model: Lab, backend: str) -> None:
    """`docker:` runs inside LXD nodes only: `up --backend netns` of a file that says
    `backend: lxd` is refused at the key, before anything is made."""
    if backend == "lxd":
        return
    for node in model.nodes.values():
        if node.docker:
            line, key = model.where(node, "docker")
            raise InputError(
                f"docker: needs the lxd backend, not {backend}",
                file=str(model.source),
                line=line,
                key=key,
            )


def _preflight(model: Lab, plan: Plan, backend: Backend) -> None:
    """What the machine lacks for the plan (an external network's host interface), as
    bad input at the file's lines, before anything is made."""
    from palmnet.topology.problems import Problem, TopologyError
    from palmnet.topology.yaml_source import format_path

    found = backend.preflight(plan)
    if found:
        lines = model.lines
        problems = [
            Problem(lines.line(path) if lines is not None else 0, format_path(path), message)
            for path, message in found
        ]
        raise TopologyError(problems, file=plan.source)


@dataclass(frozen=True)
class UpResult:
    plan: Plan
    action: str  # created, reconciled, unchanged
    detail: str = ""


@dataclass(frozen=True)
class LabSummary:
    """A running lab in one line: its backend, status (running, building), size."""

    name: str
    backend: str
    status: str
    nodes: int
    stopped: int
    source: str


@dataclass
class LabSession:
    """A running lab as the verbs see it: its plan, its backend, handles on its nodes
    (made on first use) and its switch. The journal stays open for the session."""

    name: str
    journal: Journal
    backend: Backend
    plan: Plan
    _nodes: dict[str, NodeHandle] = field(default_factory=dict)

    @property
    def stopped(self) -> set[str]:
        return set(self.journal.meta("stopped", []))

    def node(self, name: str) -> NodeHandle:
        if name not in self._nodes:
            self._nodes[name] = self.backend.node(self.plan, self.journal, name)
        return self._nodes[name]

    def forget_nodes(self) -> None:
        """Drop the handles made so far (a node restarted: a container's init changed)."""
        self._nodes.clear()

    def running_node(self, name: str) -> NodeHandle:
        handle = self.node(name)
        handle.require_running()
        return handle

    def switch(self) -> Switch:
        return self.backend.switch(self.plan, self.journal)

    def observe(self) -> list[LiveNode]:
        return self.backend.observe(self.plan, self.journal)


class LabAPI:
    def __init__(self, report: Report | None = None) -> None:
        self.report = report or (lambda _msg: None)

    # -- looking ---------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self, lab: str | None, known: Plan | None = None) -> Iterator[LabSession]:
        """The running lab named (or the only one) for the length of a block. `known`
        is its plan where the caller has it (`up` just stored it): decoding it again
        costs 0.24 s on a 1,000-node lab."""
        name = store.resolve_lab(lab)
        with store.journal(name) as j:
            plan = known if known is not None else store.stored_plan(j)
            yield LabSession(name, j, backend_of(j), plan)

    def labs(self) -> list[str]:
        """The names of the running labs (each has a journal), sorted."""
        from palmnet.state.paths import running_labs

        return running_labs()

    def summary(self, lab: str) -> LabSummary:
        """What the labs page shows of a lab without looking inside its nodes."""
        with store.journal(store.resolve_lab(lab)) as j:
            plan = store.stored_plan(j)
            return LabSummary(
                name=lab,
                backend=j.meta("backend", plan.backend),
                status=j.meta("status", "unknown"),
                nodes=len(plan.nodes),
                stopped=len(j.meta("stopped", [])),
                source=j.meta("source", plan.source),
            )

    def plan_of(self, lab: str | None) -> Plan:
        return store.plan_of(lab)

    def locate(self, lab: str | None, node: str) -> str:
        """The lab a node is in: the one named, else the only running lab that has a
        node by that name (InputError naming the labs when several have one)."""
        if lab is not None or len(store.running_labs()) <= 1:
            return store.resolve_lab(lab)
        having = []
        for name in store.running_labs():
            if rootless.is_rootless(name):
                if node in rootless.node_names(name):
                    having.append(name)
                continue
            with contextlib.suppress(LabError), store.journal(name) as j:
                if store.stored_plan(j).has_node(node):
                    having.append(name)
        if not having:
            raise InputError(f"no running node named {node}")
        if len(having) > 1:
            raise InputError(
                f"node {node} runs in several labs ({', '.join(having)}): choose one with --lab"
            )
        return having[0]

    def ls(self, lab: str | None, known: Plan | None = None) -> tuple[Plan, list[LiveNode]]:
        """What the kernel holds in every node of the lab, and how its daemons are."""
        from palmnet.lab.health import with_services

        with self.session(lab, known) as s:
            return s.plan, with_services(s.plan, s.journal, s.observe())

    def exec(self, lab: str | None, node: str, argv: list[str]) -> NoReturn:
        """Replace this process with argv inside the node (lab/door.py)."""
        from palmnet.lab.door import exec_node

        exec_node(lab, node, argv)

    def run(
        self,
        lab: str | None,
        node: str,
        argv: list[str],
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the node inside it and collect its output."""
        with self.session(lab) as s:
            require_root("exec")
            return s.running_node(node).run(argv, stdin, timeout)

    # -- up ------------------------------------------------------------------------------
    def up(
        self,
        path: str | Path,
        raise_neigh_limit: bool = False,
        backend_name: str | None = None,
        rootless_lab: bool = False,
    ) -> UpResult:
        from palmnet.lab import host
        from palmnet.topology.loader import load_lab_text, read_lab_file

        text = read_lab_file(path)
        model = load_lab_text(text, str(path))
        source = str(Path(path).resolve())
        if rootless.wanted(rootless_lab, model.name):
            rootless.refuse(model, backend_name, raise_neigh_limit)
            planned = plan_model(model)
            rootless.refuse_daemons(planned, userns.id_map_for_me())
            host.refuse_over_limit(planned)  # the machine's table, seen from here
            warning = host.neigh_warning(planned)
            if warning:
                self.report("warning: " + warning)
            made = rootless.open_lab(model.name, [n.name for n in planned.nodes], self.report)
            try:
                return self._up(model, planned, text, source, raise_neigh_limit, backend_name)
            except BaseException:
                if made:
                    rootless.abandon()
                raise
        planned = plan_model(model)  # every input problem, before anything is made
        return self._up(model, planned, text, source, raise_neigh_limit, backend_name)

    def _up(
        self,
        model: Lab,
        planned: Plan,
        text: str,
        source: str,
        raise_neigh_limit: bool,
        backend_name: str | None,
    ) -> UpResult:
        require_root("up")
        try:
            return self._up_locked(model, planned, text, source, raise_neigh_limit, backend_name)
        except BaseException:
            if not store.has_journal(model.name):  # refused, or failed and removed
                with store.locked(model.name):
                    store.forget_lock(model.name)
            raise

    def _up_locked(
        self,
        model: Lab,
        planned: Plan,
        text: str,
        source: str,
        raise_neigh_limit: bool,
        backend_name: str | None,
    ) -> UpResult:
        from palmnet.lab import host, supervisor

        with store.locked(model.name):
            # A file that names no backend follows the running lab's (else netns).
            running = None
            if store.has_journal(model.name):
                with store.journal(model.name) as j:
                    running = j.meta("backend") if j.meta("status") == "running" else None
            backend = backend_for(backend_name or model.backend or running or "netns")
            _check_docker_backend(model, backend.name)
            from palmnet.plan.xlat import backend_problem  # loads the topology model

            unsupported = backend_problem(planned, backend.name)
            if unsupported:
                raise InputError(unsupported, file=str(model.source))
            _preflight(model, planned, backend)
            if store.has_journal(model.name):
                with store.journal(model.name) as j:
                    if j.meta("status") == "running":
                        return self._reconcile(model, planned, text, source, j, backend)
                    self.report(f"lab {model.name}: an earlier `up` did not finish; cleaning it")
                    supervisor.stop(j)
                    backend_of(j).destroy(model.name, j)
                    host.restore(j, model.name)
            elif backend.leftovers(model.name):
                self.report(f"lab {model.name}: removing leftovers of a lost lab first")
                backend.destroy(model.name, None)
            plan = dataclasses.replace(planned, source=source, backend=backend.name)
            backend.check_capacity(plan)
            host.settle()  # an earlier `down`'s restore of the limit, if still under way
            if not raise_neigh_limit:
                host.refuse_over_limit(plan)
            self._create(plan, text, backend, raise_neigh_limit)
        return UpResult(plan, "created")

    def _create(self, plan: Plan, text: str, backend: Backend, raise_limit: bool) -> None:
        from palmnet.lab import host, supervisor

        backend.check(plan)
        backend.prepare(plan.lab)
        with store.journal(plan.lab) as j:
            j.set_meta("status", "building")
            j.set_meta("topology", text)
            j.set_meta("source", plan.source)
            j.set_meta("backend", backend.name)
            store.store_plan(j, plan)
            checkpoint("journal")
            for note in plan.notes:
                self.report(note)
            if not plan.dad:
                self.report("DAD is off (topology `dad: false`): duplicates would go unnoticed")
            if raise_limit:
                self.report(host.raise_neigh_limit(plan, j))
            else:
                warning = host.neigh_warning(plan)
                if warning:
                    self.report("warning: " + warning)
            try:
                backend.apply(plan, j)
            except BaseException as exc:
                backend.destroy(plan.lab, j)
                host.restore(j, plan.lab)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise LabError(f"up failed, removed what it made: {exc}") from exc
            j.set_meta("status", "running")
            supervisor.start(plan.lab, j)

    def _reconcile(
        self, model: Lab, planned: Plan, text: str, source: str, j: Journal, backend: Backend
    ) -> UpResult:
        from palmnet.lab import supervisor

        running = j.meta("backend", "netns")
        if running != backend.name:
            raise InputError(
                f"lab {model.name} runs on the {running} backend, not {backend.name}: "
                "run `palmnet down` first"
            )
        from palmnet.plan.build import held_leases, keeps_leases
        from palmnet.plan.diff import diff_plans
        from palmnet.topology.copies import with_copies

        old = store.stored_plan(j)
        launched = j.meta("launched", {})
        images = j.meta("launch_images", {})
        held = held_leases(old)
        if launched or not keeps_leases(planned, held):  # the running hosts keep theirs
            planned = plan_model(with_copies(model, launched, images), held)
        plan = dataclasses.replace(planned, source=source, backend=backend.name)
        repaired = self._repair(j, old, backend)
        renumbered = self._renumbered_in_file(j, old, plan, text, source)
        if renumbered is not None:
            return renumbered
        diff = diff_plans(old, plan)
        if diff.empty:
            if repaired:
                return UpResult(plan, "reconciled", "the file matches; " + repaired)
            return UpResult(plan, "unchanged", "no change: the running lab matches the file")
        if diff.refused:
            raise InputError(
                "cannot change a running lab this way (run `palmnet down` first):\n"
                + "\n".join(diff.refused)
            )
        backend.check(plan)
        j.set_meta("pd_pools", {})  # the file's pools win again
        stopped = set(j.meta("stopped", []))
        if diff.removed:
            backend.remove_nodes(old, j, diff.removed)
        j.set_meta("stopped", sorted(stopped - set(diff.removed)))
        self._store(j, plan, text, source)
        backend.refresh(plan, j)
        if diff.added:
            backend.apply(plan, j, diff.added)
        supervisor.notify(j)
        return UpResult(plan, "reconciled", "; ".join(filter(None, [diff.summary(), repaired])))

    def _repair(self, j: Journal, plan: Plan, backend: Backend) -> str:
        """Start again every daemon of a running node that is not running (also the ones
        the supervisor gave up on), and the supervisor if it is gone; what was done."""
        from palmnet.lab import supervisor
        from palmnet.lab.health import dead_services

        done = []
        for node, service in dead_services(plan, j, set(j.meta("stopped", []))):
            # forgotten first: a supervisor waking between the two would otherwise
            # read the old "failed" record against the new pid and never watch it
            supervisor.forget(j, f"{node}/{service}")
            backend.start_service(plan, j, node, service)
            done.append(f"{node}/{service}")
        if supervisor.pid_of(j) is None:
            supervisor.start(plan.lab, j)
            done.append("the supervisor")
        elif done:
            supervisor.notify(j)  # watch the new pids now, not at its next wake
        done += self._repair_guards(j, plan, backend)
        return f"repaired {', '.join(done)}" if done else ""

    @staticmethod
    def _repair_guards(j: Journal, plan: Plan, backend: Backend) -> list[str]:
        """Load again the guard of a running node on an external network whose table
        is gone (deleted inside the node): a lab stays a well-behaved guest."""
        from palmnet.plan.guard import guard_ruleset, guard_table
        from palmnet.services import nftables

        done = []
        stopped = set(j.meta("stopped", []))
        for node in plan.nodes:
            text = guard_ruleset(plan.lab, node)
            if text is None or node.name in stopped:
                continue
            handle = backend.node(plan, j, node.name)
            if not handle.running():
                continue
            table = ["nft", "list", "table", "netdev", guard_table(plan.lab)]
            if handle.tool(table).returncode != 0:
                nftables.load(node, handle.netns, text)
                done.append(f"the guard of {node.name}")
        return done

    @staticmethod
    def _store(j: Journal, plan: Plan, text: str, source: str) -> None:
        j.set_meta("topology", text)
        j.set_meta("source", source)
        store.store_plan(j, plan)

    def _renumbered_in_file(
        self, j: Journal, old: Plan, plan: Plan, text: str, source: str
    ) -> UpResult | None:
        """An ISP pool edited in the file: renumber the running lab (nothing else changed)."""
        from palmnet.lab.renumber import follow, pools_of
        from palmnet.plan.diff import diff_plans

        moved = {i: p for i, p in pools_of(plan).items() if pools_of(old).get(i) != p}
        if not moved:
            return None
        pools = {**j.meta("pd_pools", {}), **moved}
        same = _replan(j, j.meta("launched", {}), pools, old)
        if not diff_plans(same, plan).empty:
            return None
        self._store(j, plan, text, source)
        j.set_meta("pd_pools", {})
        session = LabSession(plan.lab, j, backend_of(j), plan)
        done = follow(session, old, report=self.report)
        return UpResult(plan, "reconciled", f"renumbered {', '.join(moved)} ({done.seconds:.3f} s)")

    # -- down ----------------------------------------------------------------------------
    def down(self, lab: str | None) -> str:
        from palmnet.lab import host, supervisor

        name = lab if lab is not None else store.lab_name(None)
        if rootless.destroy(name):
            return name
        require_root("down")
        with store.locked(name):
            if store.has_journal(name):
                with store.journal(name) as j:
                    supervisor.stop(j)
                    backend_of(j).destroy(name, j)
                    host.restore(j, name)
                store.forget_lock(name)
                return name
            from palmnet.lab.backends import present_backends

            found = False
            for backend in present_backends():
                if backend.leftovers(name):
                    backend.destroy(name, None)
                    found = True
            store.forget_lock(name)
            if not found:
                running = ", ".join(store.running_labs()) or "none"
                raise InputError(f"no lab named '{name}' (running: {running})")
        return name

    # -- nodes of a running lab ------------------------------------------------------------
    @contextlib.contextmanager
    def _changing(self, verb: str, lab: str | None) -> Iterator[LabSession]:
        """A session under the lab's lock, for verbs that change the lab."""
        name = store.resolve_lab(lab)
        require_root(verb)
        with store.locked(name), self.session(name) as s:
            yield s

    def stop(self, lab: str | None, node: str) -> bool:
        """Stop a node; False if it was stopped already."""
        from palmnet.lab import supervisor

        with self._changing("stop", lab) as s:
            s.plan.node(node)
            stopped = s.stopped
            if node in stopped:
                return False
            s.backend.stop_nodes(s.plan, s.journal, [node])
            s.journal.set_meta("stopped", sorted(stopped | {node}))
            supervisor.notify(s.journal)
            return True

    def start(self, lab: str | None, node: str) -> bool:
        """Start a stopped node with the same addresses; False if it was running."""
        from palmnet.lab import supervisor

        with self._changing("start", lab) as s:
            s.plan.node(node)
            stopped = s.stopped
            if node not in stopped:
                return False
            try:
                s.backend.apply(s.plan, s.journal, [node])
            except BaseException as exc:
                s.backend.remove_nodes(s.plan, s.journal, [node])  # stays STOPPED, clean
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise LabError(f"start of {node} failed, it stays stopped: {exc}") from exc
            s.journal.set_meta("stopped", sorted(stopped - {node}))
            supervisor.forget_node(s.journal, node)
            supervisor.notify(s.journal)
            return True

    def restart(self, lab: str | None, node: str) -> None:
        self.stop(lab, node)
        self.start(lab, node)

    def launch(
        self, lab: str | None, template: str, names: list[str], image: str | None = None
    ) -> Plan:
        """Add copies of a node to a running lab; DNS learns their names. `image`: the
        copies start from that LXD image (a published node) instead of the template's."""
        from palmnet.lab import supervisor

        with self._changing("launch", lab) as s:
            j = s.journal
            if image is not None and s.plan.backend != "lxd":
                raise InputError(f"--image is for labs on LXD; lab {s.name} runs on netns")
            _check_new_names(s.plan, names)
            launched = dict(j.meta("launched", {}))
            launched.update(dict.fromkeys(names, template))
            old_images = dict(j.meta("launch_images", {}))
            if image is not None:
                j.set_meta("launch_images", {**old_images, **dict.fromkeys(names, image)})
            try:
                plan = _replan(j, launched, j.meta("pd_pools", {}), s.plan)
            except BaseException:
                j.set_meta("launch_images", old_images)
                raise
            fresh = [n for n in names if not s.plan.has_node(n)]
            j.set_meta("launched", launched)
            store.store_plan(j, plan)
            try:
                s.backend.refresh(plan, j)  # DHCP reservations before they ask
                s.backend.apply(plan, j, fresh)
            except BaseException:
                s.backend.remove_nodes(plan, j, fresh)
                kept = {k: v for k, v in launched.items() if k not in fresh}
                j.set_meta("launched", kept)
                j.set_meta("launch_images", old_images)
                store.store_plan(j, _replan(j, kept, j.meta("pd_pools", {}), s.plan))
                raise
            supervisor.notify(j)
            return plan

    def renumber(
        self,
        lab: str | None,
        isp: str,
        prefix: str,
        *,
        nudge: bool = True,
        wait: bool | None = None,
        timeout: float = 60.0,
    ) -> object:
        """`palmnet isp renumber` (lab/renumber.py)."""
        from palmnet.lab.renumber import renumber

        name = store.resolve_lab(lab)
        require_root("isp renumber")
        return renumber(
            name,
            isp,
            prefix,
            nudge=nudge,
            wait=wait,
            timeout=timeout,
            report=self.report,
        )


__all__ = ["LabAPI", "LabSession", "LabSummary", "UpResult", "plan_file"]
