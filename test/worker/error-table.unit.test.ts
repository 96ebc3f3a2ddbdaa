import { describe, expect, it } from "vitest";
import apiDocs from "../../docs/api.md?raw";
import { errorStatus } from "../../shared/errors";

/**
 * The error table in docs/api.md is what clients read to handle Airlock's
 * errors: it lists every code the Worker can answer with, under the status
 * it comes with, and says what each conflict (409) and failed precondition
 * (412) means, since those depend on state the client cannot see.
 */

/** The "Errors" section of the API docs. */
function errorsSection(markdown: string): string {
  const section = markdown.split(/^## /m).find((part) => part.startsWith("Errors\n"));
  if (!section) throw new Error("docs/api.md has no '## Errors' section");
  return section;
}

const tableRow = /^\|\s*(\d{3})\s*\|(.*)\|\s*$/;
const codesIn = (text: string) => [...text.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]);

/** The table's rows: each code it names, with the status of its row. */
function tableCodes(section: string): Map<string, number> {
  const codes = new Map<string, number>();
  for (const line of section.split("\n")) {
    const row = tableRow.exec(line);
    if (!row) continue;
    for (const code of codesIn(row[2] ?? "")) if (code) codes.set(code, Number(row[1]));
  }
  return codes;
}

describe("docs: the error table", () => {
  const section = errorsSection(apiDocs);
  const listed = tableCodes(section);
  const codes = Object.entries(errorStatus);

  it("lists every error code under its status", () => {
    const missing = codes
      .filter(([code, status]) => listed.get(code) !== status)
      .map(([code, status]) => `${status} ${code}`);
    expect(missing).toEqual([]);
  });

  it("names no code the Worker does not answer with", () => {
    expect([...listed.keys()].filter((code) => !(code in errorStatus))).toEqual([]);
  });

  it("says what each 409 and 412 means, beyond naming it", () => {
    const prose = section
      .split("\n")
      .filter((line) => !tableRow.test(line))
      .join("\n");
    const unexplained = codes
      .filter(([, status]) => status === 409 || status === 412)
      .map(([code]) => code)
      .filter((code) => !prose.includes(code));
    expect(unexplained).toEqual([]);
  });
});
