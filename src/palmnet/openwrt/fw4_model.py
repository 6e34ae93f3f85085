"""The records the fw4 compiler passes from reading sections to writing nft.

fw4 reads every section into plain records first (zones with their match
rules, rules already split per address family and protocol, redirects),
then prints them with its templates. palmnet keeps that two-step shape:
`fw4_sections`, `fw4_rules` and `fw4_redirects` fill a `Ruleset`, and
`fw4_render` only formats it. Families are fw4's integers: 0 means "both",
4 and 6 mean IPv4 or IPv6 only, None means "not said".
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How much a warning matters, from fw4's point of view:
#   NOTICE   nothing in the file is wrong (a disabled section, reflection left out);
#   WARNING  the section is used without what the warning names (an option fw4 does not
#            know or ignores), or palmnet leaves out a feature of fw4 it does not compile;
#   ERROR    fw4 skips the section or refuses the value: the file is wrong.
NOTICE = "notice"
WARNING = "warning"
ERROR = "error"


@dataclass(frozen=True)
class FirewallWarning:
    """A section fw4 would complain about: where it is and what is wrong.

    `message` is fw4's wording ("specifies unknown option 'foo'"); str()
    gives the whole line a user sees. `level` says what it costs (NOTICE,
    WARNING, ERROR above): a notice does not fail strict mode, an error is
    what `palmnet plan` refuses. `option` names the option at fault, `value`
    the value refused and `valid` what the option would take, when known.
    """

    file: str
    line: int | None
    section: str
    message: str
    name: str | None = None
    level: str = ERROR
    option: str | None = None
    value: str | None = None
    valid: str | None = None

    @property
    def notice(self) -> bool:
        return self.level == NOTICE

    @property
    def text(self) -> str:
        """The warning without its location, as fw4 prints it."""
        who = f"{self.section} ({self.name})" if self.name else self.section
        return f"Section {who} {self.message}"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.text}"


@dataclass(frozen=True)
class FirewallResult:
    """The compiled table and everything that was said while compiling it."""

    nft_text: str
    warnings: list[FirewallWarning]


@dataclass(frozen=True)
class Addr:
    """An address match: host, prefix, non-contiguous mask (bits -1) or range."""

    family: int
    addr: str
    mask: str | None = None
    bits: int = -1
    invert: bool = False
    addr2: str | None = None  # the end of an `a-b` range


@dataclass(frozen=True)
class Network:
    """One `src_ip`/`dest_ip`/`subnet` value: its addresses and its `!`."""

    addrs: tuple[Addr, ...]
    invert: bool = False


@dataclass(frozen=True)
class Proto:
    name: str | None = None
    any: bool = False
    invert: bool = False


ANY_PROTO = Proto(any=True)


@dataclass(frozen=True)
class Port:
    low: int
    high: int
    invert: bool = False

    def text(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Limit:
    rate: int
    unit: str


@dataclass(frozen=True)
class IcmpType:
    """A parsed `icmp_type`: its number and code range in each family it has."""

    family: int
    v4: tuple[int, int, int] | None
    v6: tuple[int, int, int] | None


@dataclass(frozen=True)
class Device:
    name: str | None
    any: bool = False
    invert: bool = False


@dataclass(frozen=True)
class Mac:
    mac: str
    invert: bool = False


# (plain, negated plain, masked) address groups, fw4's subnets_group_by_masking
AddrGroup = tuple[list[Addr] | None, list[Addr] | None, list[Addr] | None]


@dataclass
class MatchRule:
    """How packets are recognised as a zone's: devices and subnets of one family."""

    family: int
    devices_pos: list[str] | None = None
    devices_neg: list[str] | None = None
    devices_neg_wildcard: list[str] | None = None
    subnets_pos: list[str] | None = None
    subnets_neg: list[str] | None = None
    subnets_masked: list[Addr] | None = None


@dataclass
class Zone:
    name: str
    family: int
    input: str
    output: str
    forward: str
    masq: bool = False
    masq6: bool = False
    masq_allow_invalid: bool = False
    mtu_fix: bool = False
    log: int = 0
    log_limit: Limit | None = None  # rate of the zone's log lines (a named nft limit)
    counter: bool = True
    match_rules: list[MatchRule] = field(default_factory=list)
    match_devices: list[str] = field(default_factory=list)
    match_subnets: list[str] = field(default_factory=list)
    related_subnets: list[Addr] = field(default_factory=list)  # its networks' and subnets
    masq4_src: list[AddrGroup] = field(default_factory=list)
    masq4_dest: list[AddrGroup] = field(default_factory=list)
    masq6_src: list[AddrGroup] = field(default_factory=list)
    masq6_dest: list[AddrGroup] = field(default_factory=list)
    sflags: set[str] = field(default_factory=set)  # verdict chains *_from_<zone>
    dflags: set[str] = field(default_factory=set)  # *_to_<zone>, dnat, snat, helper


@dataclass(frozen=True)
class ZoneRef:
    """A `src`/`dest` value: a zone, or `*` (any zone)."""

    zone: Zone | None = None

    @property
    def any(self) -> bool:
        return self.zone is None


@dataclass
class Rule:
    """One nft rule of a filter chain, as fw4's rule.uc prints it."""

    chain: str
    name: str
    family: int = 0
    proto: Proto = ANY_PROTO
    has_addrs: bool = False
    has_ports: bool = False
    iifnames: list[str] | None = None
    oifnames: list[str] | None = None
    saddrs_pos: list[str] | None = None
    saddrs_neg: list[str] | None = None
    saddrs_masked: list[Addr] | None = None
    daddrs_pos: list[str] | None = None
    daddrs_neg: list[str] | None = None
    daddrs_masked: list[Addr] | None = None
    sports_pos: list[str] | None = None
    sports_neg: list[str] | None = None
    dports_pos: list[str] | None = None
    dports_neg: list[str] | None = None
    smacs_pos: list[str] | None = None
    smacs_neg: list[str] | None = None
    icmp_types: list[int] | None = None
    icmp_codes: list[str] | None = None
    limit: Limit | None = None
    limit_burst: int | None = None
    counter: bool = False
    log: str | None = None
    log_limit: Limit | None = None  # the rule's own rate for its log lines
    target: str | None = None
    jump_chain: str | None = None
    src_zone: Zone | None = None  # which zone's log_limit applies in the forward chain
    dest_zone: Zone | None = None


@dataclass
class Redirect(Rule):
    """One NAT rule (dstnat_/srcnat_ chains), as fw4's redirect.uc prints it."""

    raddr: Addr | None = None
    rport: Port | None = None


@dataclass
class Defaults:
    input: str = "drop"
    output: str = "drop"
    forward: str = "drop"
    drop_invalid: bool = False
    tcp_reject_code: str = "tcp-reset"
    any_reject_code: str = "port-unreachable"
    synflood_protect: bool = False
    synflood_rate: Limit | None = None
    synflood_burst: int | None = None
    auto_helper: bool = True


@dataclass
class Ruleset:
    """Everything the templates need, in the order fw4 collects it."""

    defaults: Defaults = field(default_factory=Defaults)
    zones: list[Zone] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)

    def zone(self, name: str) -> Zone | None:
        return next((z for z in self.zones if z.name == name), None)

    def rules_of(self, chain: str) -> list[Rule]:
        return [r for r in self.rules if r.chain == chain]

    def redirects_of(self, chain: str) -> list[Redirect]:
        return [r for r in self.redirects if r.chain == chain]
