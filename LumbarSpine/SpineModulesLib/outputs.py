"""Nodes a run adds to the scene, remembered on its output node (Qt-free, Python 3.9-safe).

A module's output node (a table, a segmentation) holds node references (role :data:`RUN_NODES_ROLE`) to
the other nodes its last run added (markups, charts, models). They are saved with the scene; the next run
into the same output first removes them (:func:`remove_run_nodes`), so a rerun refills instead of piling
up copies, and the user's other nodes are never touched.
"""

from __future__ import annotations

from typing import Any, Iterable, List

__all__ = ["RUN_NODES_ROLE", "run_nodes", "remember_run_nodes", "remove_run_nodes", "remove_node"]

RUN_NODES_ROLE = "LumbarSpine.RunNode"


def run_nodes(owner: Any, role: str = RUN_NODES_ROLE) -> List[Any]:
    """The nodes ``owner`` references under ``role`` (those still in the scene), in the order added."""
    if owner is None:
        return []
    nodes = (owner.GetNthNodeReference(role, index) for index in range(owner.GetNumberOfNodeReferences(role)))
    return [node for node in nodes if node is not None]


def remember_run_nodes(owner: Any, nodes: Iterable[Any], role: str = RUN_NODES_ROLE) -> None:
    """Add references from ``owner`` to ``nodes`` (None entries skipped)."""
    for node in nodes:
        if node is not None and node is not owner:
            owner.AddNodeReferenceID(role, node.GetID())


def remove_run_nodes(owner: Any, scene: Any, role: str = RUN_NODES_ROLE) -> int:
    """Remove the nodes ``owner`` references under ``role`` from ``scene`` with their display and storage
    nodes (``vtkMRMLScene.RemoveNode`` leaves those behind) and drop the references; returns how many."""
    nodes = run_nodes(owner, role)
    if owner is not None:
        owner.RemoveNodeReferenceIDs(role)
    for node in nodes:
        remove_node(node, scene)
    return len(nodes)


def remove_node(node: Any, scene: Any) -> None:
    """Remove ``node`` and its display and storage nodes from ``scene`` (nothing if it is elsewhere)."""
    if node is None or node.GetScene() is not scene:
        return
    helpers = []
    for getter, counter in (
        ("GetNthDisplayNode", "GetNumberOfDisplayNodes"),
        ("GetNthStorageNode", "GetNumberOfStorageNodes"),
    ):
        if hasattr(node, counter):
            helpers += [getattr(node, getter)(index) for index in range(getattr(node, counter)())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is scene:
            scene.RemoveNode(helper)
