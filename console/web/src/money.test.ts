import { describe, expect, test } from "vitest";
import { show, totals, weighted } from "./money";

describe("money", () => {
  test("totals are exact per currency, never floats", () => {
    const sum = totals([
      { value: "0.10", currency: "EUR" },
      { value: "0.20", currency: "EUR" },
      { value: "1000", currency: "JPY" },
      { value: "12000.5", currency: "EUR" },
    ]);
    expect(sum).toEqual([
      { value: "12000.80", currency: "EUR" },
      { value: "1000", currency: "JPY" },
    ]);
  });

  test("a weighted amount rounds half away from zero to the amount's places", () => {
    expect(weighted({ value: "12000.00", currency: "EUR" }, 20)).toEqual({ value: "2400.00", currency: "EUR" });
    expect(weighted({ value: "0.05", currency: "EUR" }, 50)).toEqual({ value: "0.03", currency: "EUR" });
    expect(weighted({ value: "0.05", currency: "EUR" }, 0)).toEqual({ value: "0.00", currency: "EUR" });
    expect(weighted({ value: "999", currency: "JPY" }, 75)).toEqual({ value: "749", currency: "JPY" });
  });

  test("amounts read with grouped digits", () => {
    expect(show({ value: "1234567.50", currency: "EUR" })).toBe("1,234,567.50 EUR");
    expect(show({ value: "12", currency: "JPY" })).toBe("12 JPY");
  });
});
