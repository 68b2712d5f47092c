import { Metadata } from 'libphonenumber-js/core'
import metadata from 'libphonenumber-js/metadata.max.json'
import t from 'tap'

// normalizePhone treats a number with no type as invalid, which holds only while every numbering
// plan of the metadata it parses with has its types (with none, isValid() falls back to the plan's
// general pattern, and a number could be valid yet of no type). A libphonenumber-js upgrade that
// drops a plan's types fails here rather than turning such numbers into SECURELOGIN_PHONE_INVALID.
t.test('every numbering plan of the full metadata has its number types', async (t) => {
  const plans = new Metadata(metadata) as unknown as { selectNumberingPlan: (plan: string) => void, hasTypes: () => boolean }
  const untyped = [...Object.keys(metadata.countries), ...Object.keys(metadata.nonGeographic ?? {})].filter((plan) => {
    plans.selectNumberingPlan(plan)
    return !plans.hasTypes()
  })
  t.ok(Object.keys(metadata.countries).length > 200, 'the full metadata is the one read')
  t.same(untyped, [], 'no plan without types')
})
