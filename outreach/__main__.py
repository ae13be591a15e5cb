"""The `outreach` console script: outreach's own commands, grouped; Django's under `django`.

``outreach`` or ``outreach --help`` lists outreach's commands by what an operator does with
them, one line each. Every management command still runs by its name (``outreach migrate``
keeps working in scripts and units); ``outreach django ...`` is the explicit way in, and
``outreach django --help`` lists Django's own commands (flush, startapp, runserver...).
"""

import os
import sys
import textwrap

# What an operator does with each command. A command of ours missing here is listed under
# "more", so a new one is never hidden.
GROUPS: dict[str, tuple[str, ...]] = {
    "setup": ("apply", "mailbox", "ses", "dns", "ensure_admin", "backup"),
    "run": ("run", "scheduler", "worker", "inbox", "alerts", "telegram", "tick"),
    "campaigns": ("campaign", "leads", "simulate"),
    "pool": ("status", "plan", "rollups"),
    "diagnostics": ("doctor", "events", "reconcile", "prune"),
}
# The one line of a command, so the list stays one screen wide.
LINE_WIDTH = 80
HELP_FLAGS = {"-h", "--help", "help"}


def our_commands() -> dict[str, str]:
    """outreach's management commands (not Django's nor a library's), name → first help line."""
    import django
    from django.core.management import get_commands, load_command_class

    django.setup()
    commands = {}
    for name, app in sorted(get_commands().items()):
        if app != "outreach" and not app.startswith("outreach."):
            continue
        command = load_command_class(app, name)
        first = " ".join(str(command.help).split()).split(". ")[0].rstrip(".")
        commands[name] = textwrap.shorten(first, LINE_WIDTH, placeholder=" ...")
    return commands


def main_help() -> str:
    commands = our_commands()
    lines = ["usage: outreach COMMAND [options]   (outreach COMMAND --help for its options)", ""]
    grouped = {name for names in GROUPS.values() for name in names}
    sections = [(group, [n for n in names if n in commands]) for group, names in GROUPS.items()]
    sections.append(("more", [n for n in commands if n not in grouped]))
    width = max(map(len, commands), default=0)
    for group, names in sections:
        if not names:
            continue
        lines.append(f"{group}:")
        lines.extend(f"  {name:<{width}}  {commands[name]}" for name in names)
        lines.append("")
    lines.append("Django's own commands (migrate, createsuperuser...): outreach django --help")
    return "\n".join(lines)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "outreach.settings")
    from django.core.management import execute_from_command_line

    args = sys.argv[1:]
    if not args or (len(args) == 1 and args[0] in HELP_FLAGS):
        print(main_help())
        return
    if args[0] == "django":
        args = args[1:] or ["help"]
    execute_from_command_line(["outreach", *args])


if __name__ == "__main__":
    main()
