"""The joint decision: choose sites for every VM group and paths for every demand together.

Why joint: placing by compute alone and routing afterwards (the Nova + shortest-path way) puts
chatty groups far apart and users far from their servers, and discovers only afterwards that
the WAN cannot carry the traffic. Here every site assignment is scored by actually routing its
demands on the residual network, so a site is chosen *because* its paths are short, compliant
and uncongested.

Search (deterministic, bounded so a decision takes a few milliseconds on a 40-site WAN):
1. Candidate sites per group: active, hypervisor offered, VM jurisdiction allowed, compute free.
2. Unary score per (group, site): compute cost plus the routed cost of the group's demands to
   fixed sites and user locations. Infeasible pairs are dropped, remembering why.
3. Beam search over groups (anchored groups first, then the groups they talk to): a partial
   assignment is extended with the best few unary candidates *and* the sites nearest to the
   groups it talks to (co-location included), scored by unary + routed group-to-group demands.
4. The best complete assignments are routed exactly (demands share the residual network) and
   checked against the cost ceiling; the best score wins, the others are the explanation.

The two halves live in `scoring` (steps 1-2: `SiteScorer`, `Config`) and `solver` (steps 3-4:
`Solver`); this module is the entry point and keeps the names callers import from it.

Score = cost per hour + `network_weight` x sum(Mbps x congestion weight of every hop), so among
equally priced options the engine uses the fewest, least loaded links.
"""

from __future__ import annotations

from .decision import Decision, Kind, rejected, succeed
from .routing import Fail, Route
from .scoring import DEFAULT, EPS, Config, SiteScorer
from .solver import Solver
from .state import State
from .workload import WorkloadRequest, validate

__all__ = ["DEFAULT", "EPS", "Config", "Fail", "Route", "SiteScorer", "Solver", "decide"]


def decide(state: State, req: WorkloadRequest, config: Config = DEFAULT) -> Decision:
    """Place `req` jointly on `state`, or reject it naming the constraint that failed.

    A request for a workload id already admitted is a change: it is decided as if the old
    placement were released (what-if), and `State.apply` replaces the old one.
    """
    err = validate(req, state.topology)
    if err is not None:
        return rejected(req, "invalid_request", err)
    old = state.workloads.get(req.workload_id)
    if old is None:
        return Solver(state, req, config).solve()
    d = Solver(state.release(req.workload_id), req, config).solve()
    return d if d.kind is Kind.REJECTED else succeed(d, old)



def warm_up(decisions: int = 3) -> float:
    """Run the engine once on a small generated WAN (seconds it took): loads the compiled path
    kernels and the code paths of a decision, so that the first real decision of a process —
    a worker taking the decider over, folding the log's tail — does not pay for them (about
    0.3 s, measured on GÉANT's first fold after a takeover)."""
    import time

    from tandem.engine.topogen import generate_topology
    from tandem.engine.workgen import generate

    started = time.perf_counter()
    state = State.empty(generate_topology(12, 1))
    for req in generate(state.topology, decisions, 1, net=state.net):
        state = state.apply(decide(state, req))
    return time.perf_counter() - started
