"""The public API surface: what users import must not change by accident.

Each package's ``__all__`` is pinned exactly (a change here is a deliberate API change, made
in the same commit as its docs), and every public name of the modules users import directly
must stay importable from that module path (modules that move keep re-exports). Every name
must resolve to an object, and ``dir()`` of the package must offer it.
"""

from __future__ import annotations

import importlib

import pytest

#: Package → its ``__all__``, exactly.
PACKAGES: dict[str, list[str]] = {
    'dermsr': [
        'Degrader', 'Enhancer', 'Evaluator', 'Model', '__version__', 'backends', 'errors',
        'load_model', 'read_image', 'write_image',
    ],
    'dermsr.backends': [
        'ENTRY_POINT_GROUP', 'AUTO_ORDER', 'Availability', 'Backend', 'BackendOptions',
        'Capabilities', 'Session', 'SessionBase', 'available', 'backend_names', 'check_session',
        'get_backend', 'register', 'resolve_backend', 'unregister',
    ],
    'dermsr.errors': [
        'BackendError', 'BackendUnavailableError', 'CheckpointError', 'DermsrError', 'ExportError',
        'FidelityError', 'ImageReadError', 'ImageWriteError', 'InputError', 'UnknownNameError',
        'UnsafeCheckpointError', 'UnsupportedModelError', 'WeightsNotFoundError', 'WriteError',
    ],
    'dermsr.io': [
        'IMAGE_SUFFIXES', 'MAX_IMAGE_PIXELS', 'atomic_write_bytes', 'encode_image', 'image_header',
        'read_image', 'write_image',
    ],
    'dermsr.degrade': [
        'PRESETS', 'STEP_TYPES', 'DegradeResult', 'Degrader', 'ops', 'step_from_dict', 'steps',
    ],
    'dermsr.enhance': [
        'Enhancer', 'Tile', 'TilePlan', 'check_output', 'plan_tiles', 'run_tiled',
    ],
    'dermsr.evaluate': [
        'LPIPS', 'METRICS', 'MSE', 'PSNR', 'SSIM', 'ConsistencyReport', 'Evaluator', 'FeatureDistance',
        'RunRecord', 'Sharpness', 'check_consistency', 'check_many', 'difference_figure',
        'difference_map', 'feature_distance', 'histogram_figure', 'intensity_histogram', 'intensity_histograms', 'lpips_distance', 'mse',
        'psnr', 'qualitative_grid', 'rgb_to_y', 'save_figure', 'sharpness', 'ssim',
    ],
    'dermsr.export': [
        'artifact_key', 'cache_dir', 'cached_artifact',
    ],
    'dermsr.models': [
        'DEFAULT_MODEL', 'Model', 'ModelConfig', 'NetworkConfig', 'RRDBConfig', 'SizeRequirements',
        'SpandrelConfig', 'builtin_model_names', 'expected_shapes',
        'import_ncnn', 'infer_config', 'load_model', 'load_state_dict', 'parse_param',
        'register_model', 'unwrap_state_dict',
    ],
    'dermsr.train': [
        'Degradation', 'PairSampler', 'Split', 'TrainConfig', 'TrainResult', 'learning_rate',
        'list_images', 'load_checkpoint', 'parse_loss_spec', 'resolve_degradation', 'save_weights',
        'split_images', 'train',
    ],
    'dermsr.transforms': [
        'PIL_MODES', 'Enhance', 'EnhancedDataset', 'enhance_image',
    ],
    'dermsr.folder': [
        'LOCK_NAME', 'MANIFEST_FIELDS', 'MANIFEST_NAME', 'Job', 'Manifest', 'Result', 'Summary',
        'enhance_folder', 'find_images', 'output_path', 'plan_jobs', 'probe_16bit', 'probe_alpha',
        'process_one', 'read_manifest', 'remove_partials', 'run_jobs', 'threads_per_worker',
    ],
    'dermsr.bench': [
        'BenchResult', 'CpuInfo', 'bench_backend', 'bench_fidelity', 'cpu_info', 'environment',
        'format_size', 'format_table', 'make_input', 'make_photo', 'parse_size', 'parse_sizes',
        'peak_gflops', 'precision_summary', 'raw_runner', 'run_benchmarks', 'summarise_timings',
        'summarize',
    ],
    'dermsr.data': [
        'sample_dir', 'sample_images',
    ],
    'dermsr.integrations.ray': [
        'EnhanceBatch', 'enhance_dataset', 'read_batch', 'write_batch',
    ],
    'dermsr.cli': [
        'main', 'run',
    ],
}

#: Module → names that must stay importable from it (more may be added).
MODULES: dict[str, list[str]] = {
    'dermsr.evaluate.study': [
        'METRICS', 'BackendRun', 'StudyConfig', 'bicubic_baseline', 'enhancement_verdict',
        'ground_truth', 'machine_info', 'resolve_backends', 'run_study', 'summarise_timings',
    ],
    'dermsr.evaluate.report': [
        'Bullets', 'Callout', 'Code', 'Figure', 'Heading', 'Paragraph', 'Table', 'fmt',
        'json_safe', 'to_csv', 'to_html', 'to_markdown', 'write_csv', 'write_json', 'write_text',
    ],
    'dermsr.evaluate.scorecard': [
        'BASELINES', 'PROTOCOLS', 'TARGETS', 'ImageSet', 'format_markdown', 'meets_targets',
        'parse_image_set', 'protocol_pair', 'scorecard',
    ],
    'dermsr.export.onnx': [
        'FILE_NAME', 'INPUT_NAME', 'ONNX_OPSET', 'ONNX_TOOLS', 'OUTPUT_NAME', 'cached_onnx',
        'check_tile_shape', 'export_onnx', 'onnx_bytes',
    ],
    'dermsr.export.quantize': [
        'DEFAULT_RECIPE', 'MIN_PSNR_VS_FP32', 'RECIPES', 'CalibrationSet', 'FidelityReport',
        'calibration_set', 'check_fidelity', 'int8_onnx', 'measure_fidelity', 'quantize_onnx',
    ],
    'dermsr.validation': [
        'PRECISIONS', 'check_int', 'check_precision', 'is_int',
    ],
    'dermsr.export.ncnn': [
        'BIN_NAME', 'INPUT_NAME', 'NCNN_TOOLS', 'OUTPUT_NAME', 'PARAM_NAME', 'check_param',
        'export_ncnn', 'write_ncnn',
    ],
    'dermsr.export.pte': [
        'CACHE_KIND', 'DEFAULT_TILE_SHAPE', 'GRAPHS', 'PTE_NAME', 'PteSpec', 'cached_pte',
        'default_max_shape', 'delegation_report', 'export_pte', 'lower_to_pte',
    ],
    'dermsr.export.manifest': [
        'MANIFEST_NAME', 'build_manifest', 'tool_versions', 'write_manifest',
    ],
    'dermsr.export.cache': [
        'ENV_VAR', 'artifact_key', 'cache_dir', 'cached_artifact', 'file_sha256',
    ],
    'dermsr.export.deploy': [
        'GRAPHS', 'DeployableSRVGG', 'pixel_shuffle_as_deconv', 'repeat_channels_conv',
        'upsample_nearest_as_deconv',
    ],
    'dermsr.enhance.registry': [
        'ENTRY_POINT_GROUP', 'Availability', 'Backend', 'BackendOptions', 'Session', 'available',
        'backend_names', 'get_backend', 'register',
    ],
    'dermsr.enhance.tiling': [
        'Tile', 'TilePlan', 'pad_to_size', 'plan_tiles', 'run_tiled',
    ],
    'dermsr.enhance.convert': [
        'Prepared', 'is_uint', 'prepare', 'restore', 'to_uint',
    ],
    'dermsr.enhance.enhancer': [
        'AUTO_TILE', 'Enhancer', 'check_output',
    ],
    'dermsr.models.arch': [
        'RRDBNet', 'SRVGGNetCompact',
    ],
    'dermsr.models.rrdb': [
        'RRDBConfig', 'conv_keys', 'infer_rrdb_config', 'is_rrdb_state_dict', 'rrdb_expected_shapes',
    ],
    'dermsr.models.foreign': [
        'TILE_CONTEXT', 'SpandrelConfig', 'check_native', 'spandrel_config',
    ],
    'dermsr.models.sizes': [
        'ANY_SIZE', 'AnySizeNetwork', 'SizeRequirements',
    ],
    'dermsr.models.checkpoint': [
        'load_state_dict', 'unwrap_state_dict',
    ],
    'dermsr.models.ncnn_import': [
        'NcnnLayer', 'import_ncnn', 'parse_param',
    ],
    'dermsr.enhance.backends.executorch': [
        'ExecuTorchBackend', 'ExecuTorchSession', 'PteRunner', 'load_pte', 'thread_count',
    ],
    'dermsr.enhance.backends.torch': [
        'TorchBackend', 'TorchSession',
    ],
    'dermsr.enhance.backends.ncnn': [
        'NcnnBackend', 'NcnnSession', 'check_options', 'ncnn_artifact',
    ],
    'dermsr.enhance.backends.onnxruntime': [
        'OnnxRuntimeBackend', 'OnnxRuntimeSession', 'check_options', 'onnx_artifact',
        'parse_ort_device',
    ],
    'dermsr.evaluate.evaluator': [
        'METRICS', 'Evaluator',
    ],
    'dermsr.evaluate.metrics': [
        'MSE', 'PSNR', 'SSIM', 'SSIM_K1', 'SSIM_K2', 'SSIM_SIGMA', 'SSIM_WIN', 'Sharpness',
        'gaussian_window', 'matlab_downsample', 'matlab_downsample_factor', 'mse', 'psnr',
        'rgb_to_y', 'sharpness', 'ssim',
    ],
    'dermsr.evaluate.lpips': [
        'ENV_VAR', 'LPIPS', 'LPIPS_MIN_SIZE', 'TORCHVISION_FILE', 'BackboneSource', 'clear_cache',
        'lpips_distance', 'lpips_network', 'resolve_backbone',
    ],
    'dermsr.evaluate.features': [
        'FEATURE_LAYER', 'IMAGENET_MEAN', 'IMAGENET_STD', 'FeatureDistance', 'clear_cache',
        'feature_distance', 'feature_network',
    ],
    'dermsr.evaluate.visual': [
        'HISTOGRAM_BINS', 'Crop', 'difference_figure', 'difference_map', 'grey_levels',
        'histogram_figure', 'intensity_histogram', 'intensity_histograms', 'qualitative_grid',
        'save_figure',
    ],
    'dermsr.evaluate.consistency': [
        'DEFAULT_ATOL', 'EXTREME_VALUE', 'RANGE_TOLERANCE', 'ConsistencyReport', 'RunRecord',
        'check_consistency', 'check_many',
    ],
    'dermsr.degrade.ops': [
        'INTERPOLATIONS', 'add_gaussian_noise', 'add_poisson_noise', 'center_crop', 'check_image',
        'crop_to_multiple', 'filter2d', 'from_float', 'gaussian_blur', 'gaussian_kernel',
        'imresize_matlab', 'jpeg', 'resize', 'to_float', 'to_nchw',
    ],
    'dermsr.degrade.steps': [
        'JPEG', 'STEP_TYPES', 'CenterCrop', 'CropToMultiple', 'GaussianBlur', 'GaussianNoise',
        'PoissonNoise', 'RandomBlur', 'RandomJPEG', 'RandomNoise', 'RandomOrder', 'RandomResize',
        'Resize', 'Step', 'ToNCHW', 'step_from_dict',
    ],
    'dermsr.degrade.presets': [
        'PRESETS', 'bicubic_x4', 'build', 'phone', 'realistic', 'thesis',
    ],
    'dermsr.train.data': [
        'DataSource', 'Degradation', 'PairSampler', 'Split', 'as_pair', 'augment', 'gather_images',
        'list_images', 'load_hr', 'parse_sources', 'resolve_degradation', 'split_images',
        'to_float',
    ],
    'dermsr.train.loop': [
        'TrainResult', 'build_network', 'learning_rate', 'load_checkpoint', 'save_weights',
        'train', 'validation_pairs',
    ],
    'dermsr.train.config': [
        'LOSS_NAMES', 'SCHEDULES', 'TrainConfig', 'parse_loss_spec',
    ],
    'dermsr.train.losses': [
        'CompositeLoss', 'gradient_l1', 'l1',
    ],
}


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_package_all_is_pinned(name):
    mod = importlib.import_module(name)
    assert sorted(mod.__all__) == sorted(PACKAGES[name])
    assert len(set(mod.__all__)) == len(mod.__all__), "duplicate names in __all__"
    for attr in mod.__all__:
        assert getattr(mod, attr) is not None or attr == "__version__"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_names_stay_importable(name):
    mod = importlib.import_module(name)
    missing = [attr for attr in MODULES[name] if not hasattr(mod, attr)]
    assert not missing, f"{name} lost public names {missing}"


def test_top_level_reexports_are_the_real_objects():
    import dermsr
    from dermsr.degrade import Degrader
    from dermsr.enhance import Enhancer
    from dermsr.evaluate import Evaluator
    from dermsr.io import read_image, write_image
    from dermsr.models import Model, load_model

    assert (dermsr.Degrader, dermsr.Enhancer, dermsr.Evaluator) == (Degrader, Enhancer, Evaluator)
    assert (dermsr.Model, dermsr.load_model) == (Model, load_model)
    assert (dermsr.read_image, dermsr.write_image) == (read_image, write_image)

