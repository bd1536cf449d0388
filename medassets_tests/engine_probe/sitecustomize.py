"""Python runs this module at the start of every process that has this folder on its path
(tests put it on PYTHONPATH, with MEDASSETS_TEST_ENGINE_LOG naming a file). Once vLLM's
engine module is imported, each request the engine receives (`LLMEngine.add_request`) and
each one it finishes (a finished output of `LLMEngine.step`) appends a line to that file:
`received PID` or `finished PID`. Tests count what vLLM really generated that way,
independently of medassets' own counters."""

import importlib.abc
import importlib.util
import os
import sys

ENGINE_MODULE = "vllm.v1.engine.llm_engine"
LOG = os.environ.get("MEDASSETS_TEST_ENGINE_LOG")


def _record(event: str) -> None:
    with open(LOG, "a") as log:  # one short append per line: safe from several processes
        log.write(f"{event} {os.getpid()}\n")


def _instrument(module) -> None:
    engine = module.LLMEngine
    add_request, step = engine.add_request, engine.step

    def recorded_add_request(self, *args, **kwargs):
        request_id = add_request(self, *args, **kwargs)
        _record("received")
        return request_id

    def recorded_step(self):
        outputs = step(self)
        for output in outputs:
            if output.finished:
                _record("finished")
        return outputs

    engine.add_request, engine.step = recorded_add_request, recorded_step


class _EngineModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the engine module as Python would, and instruments it once it has run."""

    def find_spec(self, name, path, target=None):
        if name != ENGINE_MODULE:
            return None
        sys.meta_path.remove(self)  # once is enough, and find_spec below must not come back here
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _instrument(module)

        spec.loader.exec_module = exec_module
        return spec


if LOG:
    sys.meta_path.insert(0, _EngineModuleFinder())
