// What a policy asks for when it holds a call for a person's approval (docs/approvals.md).

export interface ApprovalRequirement {
  /** Shown to the approver and the caller: why the call needs a person. */
  reason: string;
  /** The claim value an approver's ID token must carry in the groups claim. */
  group: string;
  /** A stable name for the rule, carried in the receipt ("approval" when the policy names none). */
  rule: string;
  /** How many calls with the same digest one grant lets through (default 1). */
  uses: number;
  /** How long a grant stays usable after it is given, in seconds; undefined: approvals.grantSeconds. */
  windowSeconds: number | undefined;
}
