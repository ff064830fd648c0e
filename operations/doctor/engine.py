"""The engine: walks decision trees (data: questions, their checks, the verdicts at the leaves)
over the gathered facts, and returns findings ranked by severity.

A tree is nodes: an :class:`Ask` (a question; its check returns the evidence when the answer is
yes, nothing when no, or raises :class:`Unknown` when the facts cannot tell), a :class:`Fork`
(several independent questions at one point) and a :class:`Verdict` (a scenario of the incident
guide and the runbook section to open). Adding a branch is adding a record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerts.model import Scenario, Severity
from operations.doctor.facts import Facts


class Unknown(Exception):
    """The facts cannot answer a question (its source did not answer)."""


Check = Callable[[Facts], list[str]]


@dataclass(frozen=True)
class Verdict:
    scenario: Scenario
    alert: str
    """The runbook section (an alert's name) that says what to do."""
    conclusion: str


@dataclass(frozen=True)
class Ask:
    question: str
    check: Check
    yes: Node
    no: Node | None = None
    """``None``: a "no" ends this branch (nothing wrong here)."""


@dataclass(frozen=True)
class Fork:
    """Independent questions asked at one point; each may lead to its own verdict."""

    branches: tuple[Node, ...]


Node = Ask | Fork | Verdict


@dataclass(frozen=True)
class Tree:
    number: int
    name: str
    root: Node


@dataclass
class Finding:
    scenario: Scenario
    alert: str
    conclusion: str
    paths: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    @property
    def severity(self) -> Severity:
        return Severity.CRITICAL if self.scenario.priority == "P1" else Severity.WARNING


@dataclass
class Diagnosis:
    findings: list[Finding]
    unknown: dict[str, list[str]]
    """Why the facts could not answer -> the questions (``tree N: question``) left open."""


def walk(trees: Sequence[Tree], facts: Facts) -> Diagnosis:
    """Every tree over the facts; findings naming the same scenario and runbook section are
    one finding with every path that led to it."""
    found: dict[tuple[int, str], Finding] = {}
    unknown: dict[str, list[str]] = {}
    for tree in trees:
        for verdict, path, evidence in _walk(tree.root, facts, [], [], unknown, tree):
            key = (verdict.scenario.number, verdict.alert)
            finding = found.setdefault(key, Finding(verdict.scenario, verdict.alert,
                                                    verdict.conclusion))
            route = f"tree {tree.number} ({tree.name}): " + " → ".join(path)
            if route not in finding.paths:
                finding.paths.append(route)
            finding.evidence.extend(e for e in evidence if e not in finding.evidence)
    ranked = sorted(found.values(),
                    key=lambda f: (f.severity is not Severity.CRITICAL, f.scenario.number))
    return Diagnosis(ranked, unknown)


def _walk(node: Node, facts: Facts, path: list[str], evidence: list[str],
          unknown: dict[str, list[str]], tree: Tree) -> list[tuple[Verdict, list[str], list[str]]]:
    if isinstance(node, Verdict):
        return [(node, path, evidence)]
    if isinstance(node, Fork):
        return [leaf for branch in node.branches
                for leaf in _walk(branch, facts, path, evidence, unknown, tree)]
    try:
        seen = node.check(facts)
    except Unknown as why:
        asked = unknown.setdefault(str(why), [])
        question = f"tree {tree.number}: {node.question}"
        if question not in asked:
            asked.append(question)
        return []
    if seen:
        return _walk(node.yes, facts, [*path, f"{node.question} yes"], [*evidence, *seen],
                     unknown, tree)
    if node.no is None:
        return []
    return _walk(node.no, facts, [*path, f"{node.question} no"], evidence, unknown, tree)


def verdicts(node: Node) -> list[Verdict]:
    """Every verdict a tree can reach (to check that each names a runbook section)."""
    if isinstance(node, Verdict):
        return [node]
    if isinstance(node, Fork):
        return [v for branch in node.branches for v in verdicts(branch)]
    return [*verdicts(node.yes), *(verdicts(node.no) if node.no is not None else [])]
