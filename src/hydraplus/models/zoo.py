"""A Hydra student's core and head cut from a trained member of any architecture.

`cut_member` tries, in order, until a cut reproduces the member's output on an example:

1. **timm's convention** (models with ``forward_features``, ``forward_head`` and
   ``get_classifier``): the core is ``forward_head(forward_features(x), pre_logits=True)``, the
   head is the classifier ``get_classifier()`` returns.
2. **The member's children in order** (``nn.Sequential`` and modules whose forward only chains
   their children): the head is the last child with weights, or the children from ``split``.
3. **Its traced graph**, by ``torch.fx`` (`torch.fx.symbolic_trace`) or, where that fails (and for
   ``.pt2`` programs), by ``torch.export``: the graph is cut where one tensor alone crosses from
   the part before to the part after. The heads start with ``split``, a module path (``"fc"``,
   ``"layer4"``, ``"classifier.3"``); by default with the top-level block holding the member's
   final layer (the last ``Linear`` or convolution its output depends on: torchvision's ``fc``,
   ``classifier``, ``heads``, timm's ``head``), or with that final layer alone when the block
   has more weights than the rest of the network (a student with M such heads would cost
   about as much as the ensemble).

A member whose output is not a tensor (a tuple, dict, dataclass or model-output object) is cut
against its predictions, ``predictions(output)``: a traced graph then ends at the value that
computes them, and what only its other outputs need (auxiliary heads) is dropped. The members are
traced in evaluation mode, so torchvision's GoogLeNet and Inception give their main logits alone.

The core keeps the member's weights; every head is a `fresh_copy` of what follows the cut
(`with_outputs` ends it at its final Linear, with a new number of outputs). A traced core runs
the member's inference graph: its modules (batch norm, dropout) still follow ``train()``/``eval()``,
but code that reads ``self.training`` is fixed to evaluation, and a ``torch.export`` core keeps
its batch-norm statistics and has no dropout.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import importlib.util
import operator
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.export.unflatten import UnflattenedModule

Split = str | int | None
WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
WEIGHT_FUNCTIONS = {torch.nn.functional.linear, torch.nn.functional.conv1d, torch.nn.functional.conv2d,
                    torch.nn.functional.conv3d, torch.ops.aten.linear.default, torch.ops.aten.conv1d.default,
                    torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default,
                    torch.ops.aten.convolution.default}
CONV_DEFAULTS = ([1, 1], [0, 0], [1, 1], 1)  # aten.conv2d's stride, padding, dilation, groups
MAX_BATCH = 65536
ATOL, RTOL = 1e-5, 1e-4  # how closely core + head must reproduce the member
STUDENT_FORMS = "an nn.Module returning [B, M, D], or a (core, head_factory) pair"


class Refused(Exception):
    """One way of cutting does not apply to this member; the message says why."""


def fresh_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every layer's parameters initialised anew."""
    out = copy.deepcopy(module)
    for layer in out.modules():
        reset = getattr(layer, "reset_parameters", None)
        if callable(reset):
            reset()
    return out


Predictions = Callable[[Any], Tensor]  # a member's output (not a tensor) -> its predictions


def cut_member(member: nn.Module, split: Split, example: Tensor, predictions: Predictions | None = None
               ) -> tuple[nn.Module, nn.Module, str]:
    """``(core, head, how)``: the member cut as the module doc says, checked on ``example``;
    ``how`` names the way and where the heads start.

    ``split`` is None (automatic), a child's index, or a module path where the heads start.
    ``predictions`` picks the predictions from an output that is not a tensor. A path the
    member does not have, or a member no way cuts, is a ValueError saying what was tried and
    why each way failed.
    """
    if len(example) < 2:  # a dynamic batch needs an example batch of two or more
        example = torch.cat([example, example])
    expected, picked = _predictions(member, example, predictions)
    tried: list[str] = []
    for name, attempt in _attempts(member, split, expected if picked else None):
        try:
            core, head, where = attempt(example)
            _check_reproduces(core, head, example, expected)
        except Refused as why:
            tried.append(f"{name}: {why}")
            continue
        core.train(), head.train()
        return core, head, f"{name}, heads from {where}"
    raise ValueError(f"cannot cut the first member ({type(member).__name__}) into a core and heads; tried "
                     + "; ".join(tried) + f". Pass split= (the module where the heads start) or student= "
                     f"({STUDENT_FORMS})")


Attempt = Callable[[Tensor], tuple[nn.Module, nn.Module, str]]  # example -> (core, head, where)


def _attempts(member: nn.Module, split: Split, picked: Tensor | None) -> Iterator[tuple[str, Attempt]]:
    """The ways to cut, in the order they are tried; a graph is cut at the value giving ``picked``
    (the predictions picked from an output that is not a tensor), where given."""

    def fx_graph(x: Tensor) -> fx.GraphModule:
        return _graph(_fx_graph(member), x, picked)

    def export_graph(x: Tensor) -> fx.GraphModule:
        return _graph(_export_graph(member, x), x, picked)

    if isinstance(split, int) and not isinstance(split, bool):
        yield "children in order", lambda _: _chain(member, split)
        return
    if split is not None:
        _check_path(member, str(split))
        if str(split) in dict(member.named_children()):
            yield "children in order", lambda _: _chain(member, split)
        yield "torch.fx graph", lambda x: _graph_cut(fx_graph(x), str(split))
        yield "torch.export graph", lambda x: _graph_cut(export_graph(x), str(split))
        return
    yield "timm's forward_head(pre_logits=True) and get_classifier()", lambda _: _timm(member)
    yield "children in order", lambda _: _chain(member, None)
    yield "torch.fx graph", lambda x: _graph_cut(fx_graph(x), None)
    yield "torch.export graph", lambda x: _graph_cut(export_graph(x), None)


def _predictions(member: nn.Module, example: Tensor, predictions: Predictions | None) -> tuple[Tensor, bool]:
    """``(expected, picked)``: the member's predictions on ``example`` (evaluation mode), and whether
    they were picked from an output that is not a tensor."""
    was_training = member.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = member.eval()(example)
    except Exception as err:  # the member's own failure, named as such
        raise ValueError(f"the first member ({type(member).__name__}) fails on inputs of shape "
                         f"{list(example.shape)}: {_first_line(err)}") from err
    finally:
        member.train(was_training)
    if isinstance(out, Tensor):
        return out, False
    got = predictions(out) if predictions is not None else None
    if not isinstance(got, Tensor):
        raise ValueError(f"the first member ({type(member).__name__}) returns a {type(out).__name__}, not a "
                         "tensor, and nothing picks its predictions from it")
    return got, True


def _check_reproduces(core: nn.Module, head: nn.Module, example: Tensor, expected: Tensor) -> None:
    """Refused unless ``head(core(x))`` is ``expected``, the member's predictions on ``example``
    (evaluation mode)."""
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            got = head.eval()(core.eval()(example))
    except Exception as err:  # any failure of the cut parts means this cut does not work
        raise Refused(f"the parts fail to run ({_first_line(err)})") from err
    if not isinstance(got, Tensor):
        raise Refused("the cut does not return one tensor")
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=ATOL, rtol=RTOL):
        difference = ((got - expected).abs().max().item() if got.shape == expected.shape
                      else f"shape {list(got.shape)} instead of {list(expected.shape)}")
        raise Refused(f"core + head do not reproduce the member's output (max difference {difference})")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_path(member: nn.Module, path: str) -> None:
    """A ValueError naming ``path`` and the closest module paths when the member has no such module."""
    paths = [name for name, _ in member.named_modules() if name]
    if path in paths:
        return
    close = difflib.get_close_matches(path, paths, n=5, cutoff=0.5)
    children = [name for name, _ in member.named_children()]
    raise ValueError(f"split {path!r} names no module of the first member"
                     + (f"; the closest module paths are {close}" if close else "")
                     + f"; its children are {children}")


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def _as_head(module: nn.Module) -> nn.Module:
    """A lone layer as ``nn.Sequential`` (the single-head methods take the last Linear of one)."""
    return module if isinstance(module, nn.Sequential) else nn.Sequential(module)


# --- timm ----------------------------------------------------------------------------------------


class TimmFeatures(nn.Module):
    """A timm model's pre-logits features: ``forward_head(forward_features(x), pre_logits=True)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def _timm(member: nn.Module) -> tuple[nn.Module, nn.Module, str]:
    """Core: the features before timm's classifier; head: that classifier (removed from the core)."""
    if not all(callable(getattr(member, name, None))
               for name in ("forward_features", "forward_head", "get_classifier")):
        raise Refused("not a timm model (no forward_features, forward_head and get_classifier)")
    classifier = member.get_classifier()
    path = next((name for name, module in member.named_modules() if module is classifier and name), None)
    if not isinstance(classifier, nn.Module) or path is None or _weights(classifier) == 0:
        raise Refused("get_classifier() gives no classifier with weights")
    model = _copied(member)
    head = _as_head(_copied(classifier))
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent), name, nn.Identity())
    return TimmFeatures(model), head, repr(path)


# --- children in order ---------------------------------------------------------------------------


def _chain(member: nn.Module, split: Split) -> tuple[nn.Module, nn.Module, str]:
    """``(core, head)``: copies of the member's children before and from ``split``."""
    children = list(member.named_children())
    if not children:
        raise Refused("it has no child modules")
    index = _split_index(children, split)
    core = nn.Sequential(*[_copied(child) for _, child in children[:index]])
    head = nn.Sequential(*[_copied(child) for _, child in children[index:]])
    while type(head[-1]) is nn.Sequential:  # a last layer at the end, for the single-head methods
        head = nn.Sequential(*head[:-1], *head[-1])
    if split is None and _weights(head) > _weights(core):
        raise Refused(f"its last block with weights ({children[index][0]!r}) has more weights than the rest")
    return core, head, repr(children[index][0])


def _split_index(children: list[tuple[str, nn.Module]], split: Split) -> int:
    """Where the heads start: a child's name or index, or the last child with weights."""
    names = [name for name, _ in children]
    if split is None:
        trainable = [i for i, (_, child) in enumerate(children) if _weights(child) > 0]
        if len(trainable) < 2:
            raise Refused("it has fewer than two child blocks with weights")
        return trainable[-1]
    if isinstance(split, int) and not isinstance(split, bool):
        index = split if split >= 0 else len(children) + split
        if not 0 < index < len(children):
            raise ValueError(f"split index {split} must leave at least one child in the core and one in "
                             f"the heads (the member has {len(children)} children)")
        return index
    index = names.index(str(split))
    if index == 0:
        raise ValueError(f"split {split!r} is the first child: the core would be empty")
    return index


# --- traced graphs -------------------------------------------------------------------------------


def _fx_graph(member: nn.Module) -> fx.GraphModule:
    """The member (a copy, in evaluation mode) traced by ``torch.fx.symbolic_trace``."""
    try:
        return fx.symbolic_trace(_copied(member).eval())
    except Exception as err:  # fx fails in many ways on code it cannot trace
        raise Refused(f"it does not trace ({_first_line(err)})") from err


def _export_graph(member: nn.Module, example: Tensor) -> fx.GraphModule:
    """The member traced by ``torch.export`` (in evaluation mode, with a dynamic batch size), with
    its own copies of the member's parameters and buffers."""
    was_training = member.training
    batch: Any = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    shapes = ((batch,),) if isinstance(member, UnflattenedModule) else (batch,)
    try:
        with torch.no_grad():
            gm = torch.export.export(member.eval(), (example,), dynamic_shapes=shapes).module()
    except Exception as err:  # export fails in many ways on code it cannot trace
        raise Refused(f"it does not export ({_first_line(err)})") from err
    finally:
        member.train(was_training)
    for owner in gm.modules():
        for name, param in list(owner.named_parameters(recurse=False)):
            setattr(owner, name, nn.Parameter(param.detach().clone(), param.requires_grad))
        for name, buffer in list(owner.named_buffers(recurse=False)):
            persistent = name not in owner._non_persistent_buffers_set
            owner.register_buffer(name, buffer.clone(), persistent=persistent)
    return gm


def _graph(gm: fx.GraphModule, example: Tensor, picked: Tensor | None) -> fx.GraphModule:
    """``gm`` returning the value that gives ``picked`` on ``example``, where given: the last value
    its output depends on that equals it; the nodes only its other outputs need are dropped."""
    if picked is None:
        return gm
    output = next(n for n in gm.graph.nodes if n.op == "output")
    needed, stack = set[fx.Node](), list(output.all_input_nodes)
    while stack:
        node = stack.pop()
        if node not in needed:
            needed.add(node)
            stack.extend(node.all_input_nodes)
    equal: list[fx.Node] = []

    class Finder(fx.Interpreter):
        def run_node(self, node: fx.Node) -> Any:
            value = super().run_node(node)
            if (node in needed and isinstance(value, Tensor) and value.shape == picked.shape
                    and torch.allclose(value, picked, atol=ATOL, rtol=RTOL)):
                equal.append(node)
            return value

    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            Finder(gm).run(example)  # traced in evaluation mode already
    except Exception as err:  # a graph that does not run cannot be cut either
        raise Refused(f"its graph fails to run ({_first_line(err)})") from err
    if not equal:
        raise Refused("no value in its graph equals the predictions picked from its output")
    output.args = (equal[-1],)
    gm.graph.eliminate_dead_code()
    return gm


def _node_paths(node: fx.Node) -> list[str]:
    """The module paths a node runs inside (outermost first)."""
    paths = [str(entry[0]) for entry in (node.meta.get("nn_module_stack") or {}).values()]
    return [*paths, str(node.target)] if node.op == "call_module" else paths


def _inside(node: fx.Node, path: str) -> bool:
    return any(p == path or p.startswith(path + ".") for p in _node_paths(node))


def _is_weight_layer(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(str(node.target)), WEIGHT_LAYERS)
    return node.op == "call_function" and node.target in WEIGHT_FUNCTIONS


def _output_value(gm: fx.GraphModule) -> fx.Node:
    """The node the graph returns (an export graph returns it in a one-element tuple)."""
    value = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, fx.Node):
        raise Refused("its output is not one tensor")
    return value


def _final_layer(gm: fx.GraphModule) -> fx.Node:
    """The last Linear or convolution the output depends on."""
    seen: set[fx.Node] = set()
    stack = [_output_value(gm)]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.all_input_nodes)
    layers = [n for n in gm.graph.nodes if n in seen and _is_weight_layer(gm, n)]
    if not layers:
        raise Refused("its output depends on no Linear or convolution")
    return layers[-1]


def _graph_cut(gm: fx.GraphModule, split: str | None) -> tuple[nn.Module, nn.Module, str]:
    """Cut ``gm`` where the heads start: at the module ``split``, else as the module doc says."""
    nodes = list(gm.graph.nodes)

    def start(path: str) -> int | None:
        return next((i for i, n in enumerate(nodes) if _inside(n, path)), None)

    if split is not None:
        candidates = [(split, start(split), False)]
    else:  # the blocks holding the final layer, outermost first (no bigger than the rest), then it alone
        layer = _final_layer(gm)
        path = _node_paths(layer)[-1] if _node_paths(layer) else ""
        atoms = path.split(".") if path else []
        blocks = [".".join(atoms[:k]) for k in range(1, len(atoms))]
        candidates = [(block, start(block), True) for block in blocks]
        candidates += [(path, start(path), False)] if path else []
        candidates += [(path or "the final layer", nodes.index(layer), False)]
    reasons, tried = [], set()
    for path, index, limited in candidates:
        if index is None:
            reasons.append(f"{path!r} does not run in the member's forward (evaluation mode)")
            continue
        if index in tried:
            continue
        tried.add(index)
        try:
            core, head = _cut_at(gm, index)
        except Refused as why:
            reasons.append(f"not at {path!r}: {why}")
            continue
        if limited and _weights(head) > _weights(core):
            reasons.append(f"{path!r} has more weights than the rest")
            continue
        return core, head, repr(path)
    raise Refused(", ".join(reasons))


def _cut_at(gm: fx.GraphModule, index: int) -> tuple[fx.GraphModule, nn.Module]:
    """The graph's nodes before ``index`` as the core, those from it as the head; one tensor alone
    must cross between them."""
    nodes = list(gm.graph.nodes)
    compute = {n for n in nodes if n.op not in ("placeholder", "get_attr", "output")}
    core_part, head_part = nodes[:index], set(nodes[index:])
    inputs = [n for n in nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise Refused(f"it takes {len(inputs)} inputs, not one")
    crossing = [n for n in core_part if n.op != "get_attr" and any(u in head_part for u in n.users)]
    if not any(n in compute for n in core_part):
        raise Refused("the core would be empty")
    if not any(n in compute for n in head_part):
        raise Refused("the heads would be empty")
    if len(crossing) != 1 or crossing[0].op == "placeholder":
        names = ", ".join(n.name for n in crossing)
        raise Refused(f"{len(crossing)} values cross the cut ({names}), not one tensor")
    core_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in core_part:
        if node.op != "get_attr" or any(u not in head_part for u in node.users):
            env[node] = _copy_node(core_graph, node, env)
    core_graph.output(env[crossing[0]])
    head_graph = fx.Graph()
    env = {crossing[0]: head_graph.placeholder("features")}
    for node in nodes[index:]:
        for arg in node.all_input_nodes:
            if arg not in env:  # a parameter or constant read before the cut
                env[arg] = _copy_node(head_graph, arg, env)
        if node.op == "output":
            head_graph.output(env[_output_value(gm)])
        else:
            env[node] = _copy_node(head_graph, node, env)
    return fx.GraphModule(gm, core_graph, class_name="Core"), _simplified(_typed_layers(gm, head_graph))


def _copy_node(graph: fx.Graph, node: fx.Node, env: dict[fx.Node, fx.Node]) -> fx.Node:
    """``node`` copied into ``graph`` with its module paths only (a traced graph's other entries hold
    symbolic tensors, which do not copy)."""
    new = graph.node_copy(node, env.__getitem__)
    new.meta = {key: node.meta[key] for key in ("nn_module_stack",) if key in node.meta}
    return new


def _copied(module: nn.Module) -> nn.Module:
    """A deep copy of ``module``, or Refused when it does not copy (a program's modules may not)."""
    try:
        with warnings.catch_warnings():  # torch warns before failing on a program's symbolic tensors
            warnings.simplefilter("ignore", UserWarning)
            return copy.deepcopy(module)
    except Exception as err:  # deepcopy fails in many ways on modules holding traced state
        raise Refused(f"it does not copy ({_first_line(err)})") from err


def _typed_layers(gm: fx.GraphModule, graph: fx.Graph) -> fx.GraphModule:
    """The graph as a module, with linear and 2-D convolution calls on parameters as ``nn.Linear``
    and ``nn.Conv2d`` layers (a ``torch.export`` graph has only calls), so heads can be
    re-initialised and Hydra+ sees their weights."""
    root: dict[str, Any] = {}
    calls = []
    for node in list(graph.nodes):
        layer = layer_of_call(gm, node)
        if layer is None:
            continue
        with graph.inserting_before(node):
            call = graph.call_module(f"_layer{len(calls)}", (node.args[0],))
        calls.append((call, layer, _node_paths(node)[-1] if _node_paths(node) else "layer"))
        node.replace_all_uses_with(call)
        graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users:  # the converted layers' parameters
            graph.erase_node(node)
    for call, layer, path in calls:  # named after their module once its parameters are gone
        call.target = _free_name(graph, path)
        root[call.target] = layer
    for node in graph.nodes:
        if node.op in ("get_attr", "call_module") and node.target not in root:
            root[str(node.target)] = _attribute(gm, str(node.target))
    return fx.GraphModule(root, graph, class_name="Head")


def _attribute(gm: nn.Module, target: str) -> Any:
    owner, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(owner), name)


def _free_name(graph: fx.Graph, path: str) -> str:
    """A module name from ``path`` (the layer's own, where free) that no other node's target
    uses or nests with."""
    targets = {str(n.target) for n in graph.nodes if n.op in ("get_attr", "call_module")}

    def taken(name: str) -> bool:
        return any(t == name or t.startswith(name + ".") or name.startswith(t + ".") for t in targets)

    base = path or "layer"
    name, k = base, 1
    while taken(name):
        name, k = f"{base}_{k}", k + 1
    return name


def layer_of_call(gm: nn.Module, node: fx.Node) -> nn.Module | None:
    """An ``nn.Linear``/``nn.Conv2d`` with the weights of an aten linear/conv2d call on parameters
    of ``gm`` (the module owning the graph), or None for any other node."""
    aten = torch.ops.aten
    if node.op != "call_function" or node.kwargs or node.target not in (aten.linear.default,
                                                                       aten.conv2d.default):
        return None
    params = [_attribute(gm, str(a.target)) if isinstance(a, fx.Node) and a.op == "get_attr" else a
              for a in node.args[1:3]]
    weight, bias = (*params, None)[:2]
    if not isinstance(weight, nn.Parameter) or not (bias is None or isinstance(bias, nn.Parameter)):
        return None
    if node.target == aten.linear.default:
        layer: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        given = list(node.args[3:])
        stride, padding, dilation, groups = given + list(CONV_DEFAULTS[len(given):])
        if isinstance(padding, str):
            return None
        layer = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]), tuple(stride),
                          tuple(padding), tuple(dilation), groups, bias=bias is not None)
    layer = layer.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def with_outputs(head: nn.Module, outputs: int) -> nn.Module:
    """``head`` ending at its final ``nn.Linear`` (the last its output depends on), replaced by a
    new one giving ``outputs`` values; what followed that layer (an output activation, a squeeze)
    is dropped. A ValueError when the head's final layer is no Linear."""
    if isinstance(head, nn.Sequential):
        layers = [i for i, layer in enumerate(head) if _weights(layer) > 0]
        if layers and isinstance(head[layers[-1]], nn.Linear):
            return nn.Sequential(*_copied(head[:layers[-1]]), _linear(head[layers[-1]], outputs))
    try:
        gm = fx.symbolic_trace(_copied(head)) if not isinstance(head, fx.GraphModule) else _copied(head)
        layer = _final_layer(gm)
    except Exception as err:  # fx fails in many ways on code it cannot trace
        raise ValueError(f"the heads cut from the first member have no final layer found ({_first_line(err)})"
                         f"; pass split= or student= ({STUDENT_FORMS})") from err
    final = gm.get_submodule(str(layer.target)) if layer.op == "call_module" else None
    if not isinstance(final, nn.Linear):
        what = type(final).__name__ if final is not None else str(layer.target)
        raise ValueError(f"the heads cut from the first member end in {what}, not an nn.Linear that could "
                         f"give {outputs} outputs; pass split= or student= ({STUDENT_FORMS})")
    next(n for n in gm.graph.nodes if n.op == "output").args = (layer,)
    gm.graph.eliminate_dead_code()
    owner, _, name = str(layer.target).rpartition(".")
    setattr(gm.get_submodule(owner), name, _linear(final, outputs))
    gm.recompile()
    return _simplified(gm)


def _linear(layer: nn.Linear, outputs: int) -> nn.Linear:
    """A new ``nn.Linear`` like ``layer`` (inputs, bias, device, dtype) giving ``outputs`` values."""
    return nn.Linear(layer.in_features, outputs, bias=layer.bias is not None, device=layer.weight.device,
                     dtype=layer.weight.dtype)


def _simplified(head: fx.GraphModule) -> nn.Module:
    """The head as ``nn.Sequential`` where it is one: its layers in a chain (they may then run
    batched), or a graph followed by a last ``nn.Linear`` (what the single-head methods need)."""
    nodes = [n for n in head.graph.nodes if n.op not in ("placeholder", "output")]
    value = _output_value(head)
    previous = next(n for n in head.graph.nodes if n.op == "placeholder")
    chain = []
    for node in nodes:
        if node.op != "call_module" or node.args != (previous,) or node.kwargs:
            break
        chain.append(head.get_submodule(str(node.target)))
        previous = node
    else:
        if value is previous:
            return nn.Sequential(*chain)
    last = nodes[-1] if nodes else None
    if (last is value and last.op == "call_module" and len(last.args) == 1 and not last.kwargs
            and isinstance(last.args[0], fx.Node) and last.args[0].op != "placeholder"
            and isinstance(head.get_submodule(str(last.target)), nn.Linear)):
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        for node in head.graph.nodes:
            if node is not last and node.op != "output":
                env[node] = _copy_node(graph, node, env)
        graph.output(env[last.args[0]])
        return nn.Sequential(fx.GraphModule(head, graph, class_name="Trunk"),
                             head.get_submodule(str(last.target)))
    return head


# --- a student factory by name ------------------------------------------------------------------


def import_factory(text: str) -> Callable[..., Any]:
    """The callable ``module:attr`` names (``module`` importable, or a ``.py`` file's path)."""
    module_name, _, attr = text.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--student must be MODULE:FACTORY (e.g. mystudents:resnet_student or "
                         f"students.py:resnet_student), got {text!r}")
    if module_name.endswith(".py") or Path(module_name).is_file():
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"student factory file not found: {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"cannot import {module_name!r} for --student {text}: "
                             f"{_first_line(err)}") from err
        finally:
            sys.path.remove(str(Path.cwd()))
    try:
        factory = operator.attrgetter(attr)(module)
    except AttributeError:
        factory = None
    if not callable(factory):
        raise ValueError(f"--student {text}: {module_name} has no callable {attr!r}")
    return factory
