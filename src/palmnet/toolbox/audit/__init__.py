"""`palmnet audit`: the checklist of a good IPv6 implementation, judged on a lab node.

Every line is judged by what the node does after a stimulus (an RS, a link
bounce, a restart, an RA flood, an ND scan, ICMPv6 probes), never by reading
its sysctls. Stimuli come from the node itself (rdisc6) or from another node
of the same lab on the same link, inside the lab's namespaces, and are
bounded (5,000 RAs, 256 scan targets).

- model: the scorecard (verdicts, evidence, JSON, text, exit code), pure
- rdisc: rdisc6/ndisc6 output read back, pure
- frames: stimuli as Ethernet frames and a raw socket in a node
- context: the plan, the target, the stimulus node, netlink waits
- addressing, routing, bounce, flood, scan, icmp: the checks
- runner: the checklist, its run order, the audit
"""

from palmnet.toolbox.audit.model import CheckResult, Outcome, Scorecard, Verdict

__all__ = ["CheckResult", "Outcome", "Scorecard", "Verdict"]
