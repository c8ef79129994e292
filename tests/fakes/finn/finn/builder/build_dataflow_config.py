"""FINN's DataflowBuildConfig as far as finnsplit's runner uses it: from_json, steps, the default step list."""

import json

default_build_dataflow_steps = [
    "step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw", "step_create_dataflow_partition",
    "step_specialize_layers", "step_target_fps_parallelization", "step_apply_folding_config",
    "step_minimize_bit_width", "step_generate_estimate_reports", "step_hw_codegen", "step_hw_ipgen",
    "step_set_fifo_depths", "step_create_stitched_ip", "step_measure_rtlsim_performance",
    "step_out_of_context_synthesis", "step_synthesize_bitfile", "step_make_pynq_driver", "step_deployment_package",
]


class DataflowBuildConfig:
    def __init__(self, **fields):
        self.steps = None
        self.__dict__.update(fields)

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))
