"""Graph rewrites of the import (lowering/importer.py), as qonnx transformations: `apply(model) -> (model, changed)`."""

from __future__ import annotations

from qonnx.transformation.base import Transformation


class NameUnnamedNodes(Transformation):
    """Give every node without a name a unique one (`<op_type>_<index>`); named nodes keep theirs."""

    def apply(self, model):  # noqa: ANN201 - qonnx's Transformation interface
        """Name the unnamed nodes; changed when one was unnamed."""
        taken = {node.name for node in model.graph.node if node.name}
        changed = False
        for index, node in enumerate(model.graph.node):
            if node.name:
                continue
            candidate = f"{node.op_type}_{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)
            changed = True
        return model, changed


class UniqueParameterTensors(Transformation):
    """Give each node its own copy of an initializer several nodes read, named after the node.

    qonnx's GiveUniqueParameterTensors does the same with random names; the copies exist so that
    FoldTransposeIntoQuantInit, which transposes a quantizer's initializers in place, cannot change
    another node's parameter.
    """

    def apply(self, model):  # noqa: ANN201 - qonnx's Transformation interface
        """Copy every repeated use of an initializer; never changed twice (so no fixed-point loop)."""
        seen: set[str] = set()
        names = {init.name for init in model.graph.initializer}
        for node in model.graph.node:
            for index, name in enumerate(node.input):
                value = model.get_initializer(name) if name in names else None
                if value is None:
                    continue
                if name not in seen:
                    seen.add(name)
                    continue
                copy = f"{name}__{node.name}_{index}"
                while copy in names:
                    copy += "_"
                model.set_initializer(copy, value)
                names.add(copy)
                node.input[index] = copy
        return model, False
