// A small arithmetic language for traffic profiles, so that a JSON profile can say how one
// feature depends on another ("lambda": "3 + 0.08 * (age - 18)") and what the true label
// model is, and the manifest can carry it as text. Pure: no I/O.
//
//   numbers, feature names (`income`; a name with '-' in backticks: `my-feature`),
//   strings in double or single quotes (only to compare with a categorical value),
//   + - * / ^ (power), unary -, comparisons < <= > >= == != (1 or 0),
//   min(a, b, ...), max(a, b, ...), log(x), log1p(x), exp(x), sqrt(x), abs(x),
//   expit(x) (the logistic function), clip(x, low, high).
// Booleans count as 1 and 0. A missing value (null) makes the result NaN.

import { expit } from "./random.ts";

export type Value = number | string | boolean | null;

type Node =
  | { type: "number"; value: number }
  | { type: "string"; value: string }
  | { type: "name"; name: string }
  | { type: "unary"; operand: Node }
  | { type: "binary"; op: string; left: Node; right: Node }
  | { type: "call"; name: string; args: Node[] };

export interface Expression {
  readonly source: string;
  /** The names it reads, in order of first use. */
  readonly names: readonly string[];
  evaluate(lookup: (name: string) => Value | undefined): number;
}

export class ExpressionError extends Error {}

const functions: Record<string, { arity: [number, number]; apply: (...args: number[]) => number }> =
  {
    min: { arity: [1, Infinity], apply: Math.min },
    max: { arity: [1, Infinity], apply: Math.max },
    log: { arity: [1, 1], apply: Math.log },
    log1p: { arity: [1, 1], apply: Math.log1p },
    exp: { arity: [1, 1], apply: Math.exp },
    sqrt: { arity: [1, 1], apply: Math.sqrt },
    abs: { arity: [1, 1], apply: Math.abs },
    expit: { arity: [1, 1], apply: expit },
    clip: { arity: [3, 3], apply: (x, low, high) => Math.min(high, Math.max(low, x)) },
  };

type Token =
  | { kind: "number"; value: number; at: number }
  | { kind: "string"; value: string; at: number }
  | { kind: "name"; value: string; at: number }
  | { kind: "op"; value: string; at: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i] as string;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const rest = source.slice(i);
    const number = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(rest);
    if (number) {
      tokens.push({ kind: "number", value: Number(number[0]), at: i });
      i += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(rest);
    if (name) {
      tokens.push({ kind: "name", value: name[0], at: i });
      i += name[0].length;
      continue;
    }
    if (ch === "`" || ch === '"' || ch === "'") {
      const end = source.indexOf(ch, i + 1);
      if (end < 0) throw new ExpressionError(`unterminated ${ch} at ${i + 1} in "${source}"`);
      const text = source.slice(i + 1, end);
      tokens.push({ kind: ch === "`" ? "name" : "string", value: text, at: i });
      i = end + 1;
      continue;
    }
    const op = /^(?:<=|>=|==|!=|[-+*/^<>(),])/.exec(rest);
    if (op) {
      tokens.push({ kind: "op", value: op[0], at: i });
      i += op[0].length;
      continue;
    }
    throw new ExpressionError(`unexpected '${ch}' at ${i + 1} in "${source}"`);
  }
  return tokens;
}

/** Precedence climbing over: comparison < additive < multiplicative < unary minus < power. */
function parse(source: string): Node {
  const tokens = tokenize(source);
  let position = 0;
  const peek = () => tokens[position];
  const fail = (message: string): never => {
    const token = peek();
    const where = token ? `at ${token.at + 1}` : "at the end";
    throw new ExpressionError(`${message} ${where} in "${source}"`);
  };
  const isOp = (value: string) => {
    const token = peek();
    return token?.kind === "op" && token.value === value;
  };
  const expect = (value: string) => {
    if (!isOp(value)) fail(`expected '${value}'`);
    position++;
  };
  const binary = (ops: readonly string[], next: () => Node) => (): Node => {
    let left = next();
    for (;;) {
      const token = peek();
      if (token?.kind !== "op" || !ops.includes(token.value)) return left;
      position++;
      left = { type: "binary", op: token.value, left, right: next() };
    }
  };
  const primary = (): Node => {
    const token = peek();
    if (!token) return fail("expected a value");
    position++;
    if (token.kind === "number") return { type: "number", value: token.value };
    if (token.kind === "string") return { type: "string", value: token.value };
    if (token.kind === "name") {
      if (!isOp("(")) return { type: "name", name: token.value };
      const fn = functions[token.value];
      if (!fn) throw new ExpressionError(`unknown function '${token.value}' in "${source}"`);
      position++;
      const args: Node[] = [];
      if (!isOp(")")) {
        args.push(comparison());
        while (isOp(",")) {
          position++;
          args.push(comparison());
        }
      }
      expect(")");
      if (args.length < fn.arity[0] || args.length > fn.arity[1]) {
        throw new ExpressionError(
          `${token.value}() takes ${fn.arity[0] === fn.arity[1] ? fn.arity[0] : `at least ${fn.arity[0]}`} argument(s), got ${args.length} in "${source}"`,
        );
      }
      return { type: "call", name: token.value, args };
    }
    if (token.value === "(") {
      const inner = comparison();
      expect(")");
      return inner;
    }
    position--;
    return fail(`unexpected '${token.value}'`);
  };
  // Right-associative, and tighter than unary minus: -x^2 is -(x^2).
  const power = (): Node => {
    const base = primary();
    if (!isOp("^")) return base;
    position++;
    return { type: "binary", op: "^", left: base, right: unary() };
  };
  const unary = (): Node => {
    if (isOp("-")) {
      position++;
      return { type: "unary", operand: unary() };
    }
    if (isOp("+")) {
      position++;
      return unary();
    }
    return power();
  };
  const multiplicative = binary(["*", "/"], unary);
  const additive = binary(["+", "-"], multiplicative);
  const comparison = binary(["<", "<=", ">", ">=", "==", "!="], additive);
  const tree = comparison();
  if (position < tokens.length) fail("unexpected text");
  return tree;
}

function namesOf(node: Node, into: string[]): string[] {
  switch (node.type) {
    case "name":
      if (!into.includes(node.name)) into.push(node.name);
      break;
    case "unary":
      namesOf(node.operand, into);
      break;
    case "binary":
      namesOf(node.left, into);
      namesOf(node.right, into);
      break;
    case "call":
      for (const arg of node.args) namesOf(arg, into);
      break;
  }
  return into;
}

function numeric(value: Value | undefined): number {
  if (typeof value === "number") return value;
  if (typeof value === "boolean") return value ? 1 : 0;
  return Number.NaN;
}

function evaluateNode(node: Node, lookup: (name: string) => Value | undefined): Value {
  switch (node.type) {
    case "number":
    case "string":
      return node.value;
    case "name":
      return lookup(node.name) ?? null;
    case "unary":
      return -numeric(evaluateNode(node.operand, lookup));
    case "call": {
      const fn = functions[node.name];
      const args = node.args.map((arg) => numeric(evaluateNode(arg, lookup)));
      return fn ? fn.apply(...args) : Number.NaN;
    }
    case "binary": {
      const left = evaluateNode(node.left, lookup);
      const right = evaluateNode(node.right, lookup);
      if (node.op === "==" || node.op === "!=") {
        // Strings compare as strings; everything else as numbers (true == 1).
        const equal =
          typeof left === "string" || typeof right === "string"
            ? left === right
            : numeric(left) === numeric(right);
        return (node.op === "==") === equal ? 1 : 0;
      }
      const a = numeric(left);
      const b = numeric(right);
      switch (node.op) {
        case "+":
          return a + b;
        case "-":
          return a - b;
        case "*":
          return a * b;
        case "/":
          return a / b;
        case "^":
          return a ** b;
        case "<":
          return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : a < b ? 1 : 0;
        case "<=":
          return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : a <= b ? 1 : 0;
        case ">":
          return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : a > b ? 1 : 0;
        case ">=":
          return Number.isNaN(a) || Number.isNaN(b) ? Number.NaN : a >= b ? 1 : 0;
      }
      return Number.NaN;
    }
  }
}

/** Parses an expression; throws ExpressionError naming the position of a mistake. */
export function compileExpression(source: string): Expression {
  const tree = parse(source);
  const names = namesOf(tree, []);
  return {
    source,
    names,
    evaluate: (lookup) => numeric(evaluateNode(tree, lookup)),
  };
}

/** A number, or an expression's text: how a profile states a parameter. */
export type Parameter = number | string;

/** A parameter ready to evaluate: constants stay constants. */
export function compileParameter(parameter: Parameter): Expression {
  if (typeof parameter === "number") {
    return { source: String(parameter), names: [], evaluate: () => parameter };
  }
  return compileExpression(parameter);
}
