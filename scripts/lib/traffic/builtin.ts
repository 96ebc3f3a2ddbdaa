// Builtin traffic profiles, by model name. Pure data in the profile file format (format.ts),
// so the manifest can carry them and a JSON profile can extend them.
import type { ProfileFile } from "./format.ts";

/**
 * Loan applicants for `demo-credit-risk`, drawn as the demo model's training data was
 * (scripts/fixtures/make_builtin_fixtures.py, credit_data): the champion sees the population it
 * was fitted on until a drift says otherwise. The true default model is the one the training
 * labels came from (non-linear: log income, a jump at 85% utilisation, saturating late payments,
 * U-shaped in age), plus a regional effect that no feature carries, so fairness metrics across
 * regions have a gap to find.
 */
export const demoCreditRisk: ProfileFile = {
  description:
    "Loan applicants as in the demo model's training data; about 15% default, more in the south",
  customers: 2000,
  features: {
    age: { kind: "uniformInt", low: 18, high: 90 },
    income: {
      kind: "lognormal",
      mu: "log(48000) + log(1 + 0.01 * min(age - 18, 30))",
      sigma: 0.5,
      decimals: 2,
      description: "grows with seniority up to 30 years",
    },
    debt_to_income: { kind: "beta", alpha: 2, beta: 5, low: 0, high: 1.2, decimals: 3 },
    credit_lines: { kind: "poisson", lambda: "3 + 0.08 * (age - 18)" },
    late_payments_12m: { kind: "poisson", lambda: "0.3 + 1.2 * debt_to_income" },
    utilization: { kind: "beta", alpha: 2, beta: 3, low: 0, high: 1.25, decimals: 3 },
    months_employed: {
      kind: "exponential",
      mean: 60,
      max: "12 * (age - 18)",
      description: "no longer than the working life",
    },
    has_mortgage: { kind: "bernoulli", p: "expit(log(income / 60000) + 0.03 * (age - 40))" },
  },
  attributes: {
    region: { scope: "customer", weights: { north: 0.3, south: 0.25, east: 0.2, west: 0.25 } },
    channel: { scope: "request", weights: { web: 0.55, app: 0.3, branch: 0.15 } },
    age_band: {
      feature: "age",
      bands: [
        { label: "18-24", below: 25 },
        { label: "25-34", below: 35 },
        { label: "35-49", below: 50 },
        { label: "50-64", below: 65 },
        { label: "65+" },
      ],
    },
  },
  truth: {
    kind: "logistic",
    positive: "default",
    negative: "repaid",
    logit:
      "-1.0 * log(income / 50000) + 3 * max(debt_to_income - 0.4, 0) + 0.6 * utilization" +
      " + 1.4 * (utilization > 0.85) + 0.9 * min(late_payments_12m, 3) + 0.0015 * (age - 45) ^ 2" +
      " - 0.6 * (months_employed >= 24) + 0.02 * credit_lines - 0.3 * has_mortgage",
    // Solved for a 15% default rate on this population (as the training data's was), then
    // fixed: a population that drifts changes the default rate, not the true model.
    intercept: -3.8895,
    segments: [{ attribute: "region", value: "south", effect: 0.5 }],
  },
  outcomes: [
    {
      kpi: "credit_loss",
      whenLabel: "default",
      value: "0.3 * income",
      multiplier: { kind: "beta", alpha: 2, beta: 2.5 },
      decimals: 2,
      description: "a loan of 30% of income, times the loss given default",
    },
    {
      kpi: "interest_revenue",
      whenLabel: "repaid",
      value: "0.3 * income * 0.07",
      multiplier: { kind: "uniform", low: 0.8, high: 1.2 },
      decimals: 2,
      description: "7% a year on the loan, give or take",
    },
  ],
};

export const builtinProfiles: Record<string, ProfileFile> = {
  "demo-credit-risk": demoCreditRisk,
};
