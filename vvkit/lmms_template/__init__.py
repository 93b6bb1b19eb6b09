"""Files copied into every lmms-eval task folder that `vvkit.lmms_tasks.export_tasks` writes (not imported by vvkit)."""
