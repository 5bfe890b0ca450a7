"""All writes of the orchestration app, by concern: definitions, launching, step completion,
background execution, admin operations, the sweep and API tokens. Keyword-only, typed;
`actor=None` means the system. Import from here (`from orchestration.services import run_launch`);
the modules are where each lives."""

from __future__ import annotations

from .background import (
    BackgroundKind,
    background_step_execute,
    dispatch_step,
)
from .common import (
    CURRENT_RUN,
    PERM_CANCEL,
    PERM_IMPORT,
    PERM_LAUNCH,
    PERM_RETRY,
    PERM_SKIP,
    PERM_SUSPEND,
    record_accessor_for,
    record_visible_to,
    run_event_add,
)
from .definitions import (
    DefinitionsInvalid,
    ImportReport,
    definitions_export,
    definitions_import,
    definitions_import_paths,
    definitions_yaml,
    known_flows,
    version_activate,
    version_export,
)
from .launch import (
    LaunchError,
    launch_for_record_change,
    launch_many,
    run_launch,
)
from .operations import (
    PERM_CHANGE_VARIABLES,
    ActionNotAllowed,
    run_actions_available,
    run_cancel,
    run_recheck,
    run_resume,
    run_set_variable,
    run_suspend,
    step_resume,
    step_retry,
    step_skip,
)
from .steps import (
    StepNotOpen,
    step_complete_locked,
)
from .sweep import (
    SWEEP_LOCK,
    SweepReport,
    single_flight,
    sweep,
)
from .tokens import (
    TOKEN_TOUCH_INTERVAL,
    TokenRefused,
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
)

__all__ = [
    "CURRENT_RUN",
    "PERM_CANCEL",
    "PERM_CHANGE_VARIABLES",
    "PERM_IMPORT",
    "PERM_LAUNCH",
    "PERM_RETRY",
    "PERM_SKIP",
    "PERM_SUSPEND",
    "SWEEP_LOCK",
    "TOKEN_TOUCH_INTERVAL",
    "ActionNotAllowed",
    "BackgroundKind",
    "DefinitionsInvalid",
    "ImportReport",
    "LaunchError",
    "StepNotOpen",
    "SweepReport",
    "TokenRefused",
    "api_token_authenticate",
    "api_token_create",
    "api_token_revoke",
    "background_step_execute",
    "definitions_export",
    "definitions_import",
    "definitions_import_paths",
    "definitions_yaml",
    "dispatch_step",
    "known_flows",
    "launch_for_record_change",
    "launch_many",
    "record_accessor_for",
    "record_visible_to",
    "run_actions_available",
    "run_cancel",
    "run_event_add",
    "run_launch",
    "run_recheck",
    "run_resume",
    "run_set_variable",
    "run_suspend",
    "single_flight",
    "step_complete_locked",
    "step_resume",
    "step_retry",
    "step_skip",
    "sweep",
    "version_activate",
    "version_export",
]
