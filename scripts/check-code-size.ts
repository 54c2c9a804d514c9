import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * `npm run check:size`: the size limits of the house (outside tests and scripts) — a file under
 * services/<name>/src at most MAX_FILE_LINES lines, a function at most MAX_FUNCTION_LINES lines
 * (services and shared), a line at most MAX_LINE_LENGTH characters (services and shared, tests included).
 * Prints each offender and exits 1 when there is one.
 */
const ROOT = path.resolve(__dirname, '..');
const MAX_FILE_LINES = 250;
const MAX_FUNCTION_LINES = 80;
/** prettier wraps code at 120; strings and comments it cannot wrap are held to the same width here. */
const MAX_LINE_LENGTH = 120;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) return sourceFiles(file);
    return file.endsWith('.ts') ? [file] : [];
  });
}

function functionLengths(file: string, text: string): { line: number; lines: number; name: string }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found: { line: number; lines: number; name: string }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const named = node.name ?? (ts.isVariableDeclaration(node.parent) ? node.parent.name : undefined);
      found.push({ line: start + 1, lines: end - start + 1, name: named ? named.getText(source) : '(anonymous)' });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const offenders: string[] = [];
const services = readdirSync(path.join(ROOT, 'services'));
const roots = [...services.map((s) => path.join(ROOT, 'services', s, 'src')), path.join(ROOT, 'shared', 'src')];
for (const file of roots.flatMap(sourceFiles)) {
  const text = readFileSync(file, 'utf8');
  const relative = path.relative(ROOT, file);
  text.split('\n').forEach((line, i) => {
    if (line.length > MAX_LINE_LENGTH) offenders.push(`${relative}:${i + 1}: line of ${line.length} characters`);
  });
  if (file.endsWith('.test.ts')) continue;
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  if (relative.startsWith('services') && lines > MAX_FILE_LINES) offenders.push(`${relative}: ${lines} lines (file)`);
  for (const fn of functionLengths(file, text)) {
    if (fn.lines > MAX_FUNCTION_LINES) offenders.push(`${relative}:${fn.line}: ${fn.name} is ${fn.lines} lines`);
  }
}
if (offenders.length === 0) {
  console.log(
    `[check:size] files <= ${MAX_FILE_LINES} lines, functions <= ${MAX_FUNCTION_LINES} lines, ` +
      `lines <= ${MAX_LINE_LENGTH} characters`,
  );
} else {
  console.log(`[check:size] over the limits (files ${MAX_FILE_LINES}, functions ${MAX_FUNCTION_LINES} lines):`);
  for (const o of offenders) console.log(`  ${o}`);
  process.exitCode = 1;
}
