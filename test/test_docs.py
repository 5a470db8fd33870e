"""The Markdown documentation: every relative link resolves to a file (and heading) in the repo."""

from pathlib import Path
import re
import subprocess

ROOT = Path(__file__).resolve().parents[1]
# [text](target) outside code; images too. Targets with a scheme (https:, mailto:) are external.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
FENCE = re.compile(r'^(```|~~~).*?^\1', re.S | re.M)
CODE_SPAN = re.compile(r'`[^`\n]*`')


def markdown_files():
    """Return the repository's Markdown files (tracked or new), relative to the root."""
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard',
                             '*.md'], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout.strip():
        return sorted({ROOT / name for name in listed.stdout.split()
                       if (ROOT / name).is_file()})
    return sorted(path for path in ROOT.rglob('*.md')
                  if not any(part.startswith('.') for part in path.relative_to(ROOT).parts))


def anchors(path):
    """Return the heading anchors of a Markdown file, as GitHub makes them."""
    text = FENCE.sub('', path.read_text())
    seen, result = {}, set()
    for heading in re.findall(r'^#{1,6}\s+(.*?)\s*#*$', text, re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f'{slug}-{count}')
    return result


def broken_links(path):
    """Return the links of one file that leave the repository or lead nowhere."""
    text = CODE_SPAN.sub('', FENCE.sub('', path.read_text()))
    broken = []
    for target in LINK.findall(text):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target):
            continue
        name, _, anchor = target.partition('#')
        resolved = (path.parent / name).resolve() if name else path
        if ROOT.resolve() not in (resolved, *resolved.parents):
            broken.append(f'{target} (outside the repository)')
        elif not resolved.exists():
            broken.append(f'{target} (no such file)')
        elif anchor and resolved.is_file() and anchor not in anchors(resolved):
            broken.append(f'{target} (no such heading)')
    return broken


def test_every_relative_link_in_the_documentation_resolves_inside_the_repository():
    files = markdown_files()
    assert ROOT / 'README.md' in files and ROOT / 'docs' / 'ARCHITECTURE.md' in files
    broken = {str(path.relative_to(ROOT)): links for path in files
              if (links := broken_links(path))}
    assert not broken, broken
