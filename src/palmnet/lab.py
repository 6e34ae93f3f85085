"""The Lab API: what the CLI (and later the web UI) calls.

It ties the layers together in one direction: topology -> plan -> backend.
A lab's journal keeps the topology text it was built from, so every later
verb (ls, exec, stop, down) re-derives the same plan offline instead of
trusting a stored copy of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from palmnet.backends.base import Backend, LiveNode
from palmnet.errors import InputError, LabError, PalmnetError
from palmnet.plan.build import plan_lab
from palmnet.plan.diff import PlanDiff, diff_plans
from palmnet.plan.model import Plan
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir, running_labs, state_root
from palmnet.topology.copies import with_copies, with_pools
from palmnet.topology.loader import load_lab, load_lab_text

Report = Callable[[str], None]


def plan_file(path: str | Path) -> Plan:
    plan = plan_lab(load_lab(path))
    _check_daemon_configs(plan, str(path))
    return plan


def _check_daemon_configs(plan: Plan, source: str) -> None:
    """What a daemon would refuse, reported as bad input before anything is made."""
    from palmnet.services.bird import routing_problems

    for node in plan.nodes:
        if node.routing is not None:
            problems = routing_problems(node.routing)
            if problems:
                raise InputError("; ".join(problems), file=source, key=f"nodes.{node.name}.routing")


BACKENDS = ("netns", "lxd")


def backend_for(name: str = "netns") -> Backend:
    """The backend by name; LXD's is imported only when used (pylxd is slow to load)."""
    if name == "netns":
        from palmnet.backends.netns.backend import NetnsBackend

        return NetnsBackend()
    if name == "lxd":
        from palmnet.backends.lxd.backend import LxdBackend

        return LxdBackend()
    raise InputError(f"unknown backend '{name}' (valid: {', '.join(BACKENDS)})")


def _backend_of(journal: Journal) -> Backend:
    return backend_for(journal.meta("backend", "netns"))


def _require_root(verb: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"palmnet {verb} needs root (network namespaces): run it with sudo")


def resolve_lab(name: str | None) -> str:
    """The lab a verb acts on: the one named, or the only running one."""
    labs = running_labs()
    if name is not None:
        if name not in labs:
            known = ", ".join(labs) or "none"
            raise InputError(f"no running lab named '{name}' (running: {known})")
        return name
    if not labs:
        raise InputError("no lab is running (start one with `palmnet up LAB.yaml`)")
    if len(labs) > 1:
        raise InputError(f"several labs are running ({', '.join(labs)}): say which with --lab")
    return labs[0]


@contextlib.contextmanager
def _locked(lab: str) -> Iterator[None]:
    """One verb at a time changes labs: a lock on the state root itself (no lock file
    is left behind). Verbs that change labs are short, so serialising them is cheap."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _journal_path(lab: str) -> Path:
    return lab_dir(lab) / "journal.sqlite"


def open_journal(lab: str) -> Journal:
    return Journal.open(_journal_path(lab))


def stored_plan(journal: Journal) -> Plan:
    text = journal.meta("topology")
    source = journal.meta("source")
    if text is None:
        raise LabError("the lab's journal holds no topology (a crashed `up`?): run `palmnet down`")
    plan = _plan_text(text, source, journal.meta("launched", {}), journal.meta("pd_pools", {}))
    return dataclasses.replace(plan, backend=journal.meta("backend", plan.backend))


def _plan_text(
    text: str, source: str, launched: dict[str, str], pools: dict[str, str] | None = None
) -> Plan:
    """The plan of a topology text, with the copies `launch` added and the ISP pools
    `isp renumber` set (uci: paths stay relative to the original file)."""
    lab = with_copies(load_lab_text(text, source), launched)
    return plan_lab(with_pools(lab, pools or {}))


@dataclass(frozen=True)
class UpResult:
    plan: Plan
    action: str  # created, reconciled, unchanged
    detail: str = ""


class LabAPI:
    def __init__(self, report: Report | None = None) -> None:
        self.report = report or (lambda _msg: None)

    # -- up ------------------------------------------------------------------------
    def up(
        self, path: str | Path, raise_neigh_limit: bool = False, backend_name: str | None = None
    ) -> UpResult:
        plan = plan_file(path)
        text = Path(path).read_text()
        if backend_name is not None:
            plan = dataclasses.replace(plan, backend=backend_name)
        _require_root("up")
        backend = backend_for(plan.backend)
        with _locked(plan.lab):
            if _journal_path(plan.lab).exists():
                journal = open_journal(plan.lab)
                running = journal.meta("backend", "netns")
                if journal.meta("status") == "running" and running != plan.backend:
                    journal.close()
                    raise InputError(
                        f"lab {plan.lab} runs on the {running} backend, not {plan.backend}: "
                        "run `palmnet down` first"
                    )
                if journal.meta("status") == "running":
                    try:
                        return self._reconcile(plan, text, journal, backend)
                    finally:
                        journal.close()
                self.report(f"lab {plan.lab}: an earlier `up` did not finish; cleaning it first")
                _backend_of(journal).destroy(plan.lab, journal)
            else:
                from palmnet.backends.netns.teardown import lab_netns_names

                if lab_netns_names(plan.lab):
                    self.report(f"lab {plan.lab}: removing leftovers of a lost lab first")
                    backend.destroy(plan.lab, None)
            self._create(plan, text, backend, raise_neigh_limit)
        return UpResult(plan, "created")

    def _create(self, plan: Plan, text: str, backend: Backend, raise_limit: bool) -> None:
        from palmnet.backends.netns import neigh_limit
        from palmnet.backends.netns.crash import checkpoint

        backend.prepare(plan.lab)
        journal = open_journal(plan.lab)
        journal.set_meta("status", "building")
        journal.set_meta("topology", text)
        journal.set_meta("source", plan.source)
        journal.set_meta("backend", backend.name)
        checkpoint("journal")
        for note in plan.notes:
            self.report(note)
        if not plan.dad:
            self.report("DAD is off (topology `dad: false`): duplicates would go unnoticed")
        if raise_limit:
            self.report(neigh_limit.raise_limit(plan, journal))
        else:
            warning = neigh_limit.check(plan)
            if warning:
                self.report("warning: " + warning)
        try:
            backend.apply(plan, journal)
        except BaseException as exc:
            backend.destroy(plan.lab, journal)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise LabError(f"up failed, removed what it made: {exc}") from exc
        journal.set_meta("status", "running")
        journal.close()

    def _reconcile(self, plan: Plan, text: str, journal: Journal, backend: Backend) -> UpResult:
        old = stored_plan(journal)
        launched = journal.meta("launched", {})
        if launched:
            plan = _plan_text(text, plan.source, launched)
        renumbered = self._renumbered_in_file(journal, old, plan, text, launched)
        if renumbered is not None:
            return renumbered
        diff = diff_plans(old, plan)
        if diff.empty:
            return UpResult(plan, "unchanged", "no change: the running lab matches the file")
        if diff.refused:
            raise InputError(
                "cannot change a running lab this way (run `palmnet down` first):\n"
                + "\n".join(diff.refused)
            )
        journal.set_meta("pd_pools", {})  # the file's pools win again
        stopped = set(journal.meta("stopped", []))
        if diff.removed:
            backend.remove_nodes(old, journal, diff.removed)
        journal.set_meta("stopped", sorted(stopped - set(diff.removed)))
        journal.set_meta("topology", text)
        journal.set_meta("source", plan.source)
        backend.refresh(plan, journal)
        if diff.added:
            backend.apply(plan, journal, diff.added)
        return UpResult(plan, "reconciled", diff.summary())

    def _renumbered_in_file(
        self, journal: Journal, old: Plan, plan: Plan, text: str, launched: dict[str, str]
    ) -> UpResult | None:
        """An ISP pool edited in the file: renumber the running lab (nothing else changed)."""
        from palmnet.pd.renumber import follow, pools_of

        moved = {i: p for i, p in pools_of(plan).items() if pools_of(old).get(i) != p}
        if not moved:
            return None
        pools = {**journal.meta("pd_pools", {}), **moved}
        same = _plan_text(journal.meta("topology"), journal.meta("source"), launched, pools)
        if not diff_plans(same, plan).empty:
            return None
        journal.set_meta("topology", text)
        journal.set_meta("source", plan.source)
        journal.set_meta("pd_pools", {})
        done = follow(journal, old, plan, report=self.report)
        return UpResult(plan, "reconciled", f"renumbered {', '.join(moved)} ({done.seconds:.3f} s)")

    # -- the other verbs -----------------------------------------------------------
    def down(self, lab: str | None) -> str:
        _require_root("down")
        name = lab if lab is not None else resolve_lab(None)
        with _locked(name):
            journal = open_journal(name) if _journal_path(name).exists() else None
            if journal is not None:
                _backend_of(journal).destroy(name, journal)
                return name
            from palmnet.backends.netns.teardown import lab_netns_names

            found = bool(lab_netns_names(name)) or lab_dir(name).exists()
            if found:
                backend_for("netns").destroy(name, None)
            if self._lxd_leftovers(name):
                found = True
            if not found:
                running = ", ".join(running_labs()) or "none"
                raise InputError(f"no lab named '{name}' (running: {running})")
        return name

    @staticmethod
    def _lxd_leftovers(name: str) -> bool:
        """LXD objects outlive /run: find them by their lab tag even without a journal."""
        import importlib.util

        if importlib.util.find_spec("pylxd") is None:
            return False
        try:
            backend = backend_for("lxd")
            finder = getattr(backend, "destroy_tagged", None)
            return bool(finder(name)) if finder else False
        except (ImportError, PalmnetError):
            return False

    def ls(self, lab: str | None, plan: Plan | None = None) -> tuple[Plan, list[LiveNode]]:
        """What the kernel holds in every node (`plan`: the lab's, if the caller has it)."""
        name = resolve_lab(lab)
        journal = open_journal(name)
        try:
            plan = plan or stored_plan(journal)
            return plan, _backend_of(journal).observe(plan, journal)
        finally:
            journal.close()

    def plan_of(self, lab: str | None) -> Plan:
        journal = open_journal(resolve_lab(lab))
        try:
            return stored_plan(journal)
        finally:
            journal.close()

    def exec(self, lab: str | None, node: str, argv: list[str]) -> int:
        _require_root("exec")
        plan = self.plan_of(lab)
        self._known(plan, node)
        return backend_for(plan.backend).exec(plan, node, argv)

    def run(
        self,
        lab: str | None,
        node: str,
        argv: list[str],
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a node and collect its output."""
        _require_root("exec")
        plan = self.plan_of(lab)
        self._known(plan, node)
        return backend_for(plan.backend).run(plan, node, argv, stdin, timeout)

    def stop(self, lab: str | None, node: str) -> None:
        _require_root("stop")
        name = resolve_lab(lab)
        with _locked(name):
            journal = open_journal(name)
            plan = stored_plan(journal)
            self._known(plan, node)
            stopped = set(journal.meta("stopped", []))
            if node not in stopped:
                backend = _backend_of(journal)
                # LXD keeps a stopped container (and what the user changed in it).
                getattr(backend, "stop_nodes", backend.remove_nodes)(plan, journal, [node])
                journal.set_meta("stopped", sorted(stopped | {node}))
            journal.close()

    def start(self, lab: str | None, node: str) -> None:
        _require_root("start")
        name = resolve_lab(lab)
        with _locked(name):
            journal = open_journal(name)
            plan = stored_plan(journal)
            self._known(plan, node)
            stopped = set(journal.meta("stopped", []))
            if node in stopped:
                backend = _backend_of(journal)
                try:
                    backend.apply(plan, journal, [node])
                except BaseException as exc:
                    backend.remove_nodes(plan, journal, [node])  # stays STOPPED, clean
                    journal.close()
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise
                    raise LabError(f"start of {node} failed, it stays stopped: {exc}") from exc
                journal.set_meta("stopped", sorted(stopped - {node}))
            journal.close()

    def launch(self, lab: str | None, template: str, names: list[str]) -> Plan:
        """Add copies of a node to a running lab; DNS learns their names."""
        _require_root("launch")
        name = resolve_lab(lab)
        with _locked(name):
            journal = open_journal(name)
            backend = _backend_of(journal)
            try:
                launched = dict(journal.meta("launched", {}))
                launched.update(dict.fromkeys(names, template))
                old = stored_plan(journal)
                plan = _plan_text(
                    journal.meta("topology"),
                    journal.meta("source"),
                    launched,
                    journal.meta("pd_pools", {}),
                )
                fresh = [n for n in names if n not in {x.name for x in old.nodes}]
                journal.set_meta("launched", launched)
                try:
                    backend.refresh(plan, journal)  # DHCP reservations before they ask
                    backend.apply(plan, journal, fresh)
                except BaseException:
                    backend.remove_nodes(plan, journal, fresh)
                    journal.set_meta(
                        "launched", {k: v for k, v in launched.items() if k not in fresh}
                    )
                    raise
                return plan
            finally:
                journal.close()

    def restart(self, lab: str | None, node: str) -> None:
        self.stop(lab, node)
        self.start(lab, node)

    @staticmethod
    def _known(plan: Plan, node: str) -> None:
        names = [n.name for n in plan.nodes]
        if node not in names:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise InputError(f"no node '{node}' in lab {plan.lab} (nodes: {shown})")


__all__ = ["LabAPI", "PlanDiff", "UpResult", "plan_file", "resolve_lab"]
