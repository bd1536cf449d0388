"""Resources: the generation engines of a step."""

from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from medassets.core.registry import ModelSpec
from medassets.engines import Engine, open_engine
from medassets.engines.models import ResolvedModel


class GenerationEngines(ConfigurableResource):
    """Opens an engine the first time a model needs one, and shuts every engine down
    explicitly when the step ends: a vLLM engine left running keeps its process alive."""

    _engines: dict[str, Engine] = PrivateAttr(default_factory=dict)

    def get(self, spec: ModelSpec, model: ResolvedModel) -> Engine:
        if spec.name not in self._engines:
            self._engines[spec.name] = open_engine(spec, model)
        return self._engines[spec.name]

    def close(self, name: str) -> None:
        engine = self._engines.pop(name, None)
        if engine is not None:
            engine.close()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for name in list(self._engines):
            self.close(name)

    def describe(self) -> dict[str, Any]:
        return {name: engine.describe() for name, engine in self._engines.items()}
